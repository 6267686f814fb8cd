#!/usr/bin/env node
// The installed `fulcrum-check` command: the linearizability checker. Runs from TypeScript sources through tsx.
import { register } from 'tsx/esm/api';

register();
await import('../chaos/checker/cli.ts');
