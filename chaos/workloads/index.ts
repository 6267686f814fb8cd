// The workloads by name, as `--workload` spells them.
import { clock } from './clock.js';
import { exactlyOnce } from './exactly-once.js';
import { lease } from './lease.js';
import { lock } from './lock.js';
import { register } from './register.js';
import { set } from './set.js';
import { watch } from './watch.js';
import type { Workload } from './types.js';

export const WORKLOADS: Readonly<Record<string, Workload>> = { register, set, lock, lease, watch, clock, 'exactly-once': exactlyOnce };
