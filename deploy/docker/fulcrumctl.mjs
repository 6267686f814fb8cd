#!/usr/bin/env node
// The container image's `fulcrumctl` command (linked from /usr/local/bin/fulcrumctl): the command line bundled
// into one file, dist/fulcrumctl.mjs (deploy/docker/bundle.mjs), found relative to this file's real path, so
// `kubectl exec fulcrum-0 -- fulcrumctl member list` and `docker compose exec fulcrum-1 fulcrumctl snapshot save
// /var/lib/fulcrum/backup.db` work inside the image.
import process from 'node:process';
import { URL } from 'node:url';

process.setSourceMapsEnabled(true);
const { runAsProgram } = await import(new URL('../../dist/fulcrumctl.mjs', import.meta.url).href);
await runAsProgram();
