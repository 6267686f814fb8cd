// Seeds 1..250 of the CI sweep (seeds-b.test.ts runs 251..500 on the other worker).
import { describeSeedRange } from './seedsweep.js';

describeSeedRange('simulator sweep, first half', 1, 250);
