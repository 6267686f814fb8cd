#!/usr/bin/env node
// The installed `fulcrum` command. Fulcrum runs from its TypeScript sources through tsx (no build step).
import { register } from 'tsx/esm/api';

register();
await import('../node/cli.ts');
