#!/usr/bin/env node
// The installed `fulcrumctl` command. Fulcrum runs from its TypeScript sources through tsx (no build step).
import { register } from 'tsx/esm/api';

register();
const { runAsProgram } = await import('../client/ctl/cli.ts');
await runAsProgram();
