// Seeds 251..500 of the CI sweep (seeds-a.test.ts runs 1..250 on the other worker).
import { describeSeedRange } from './seedsweep.js';

describeSeedRange('simulator sweep, second half', 251, 250);
