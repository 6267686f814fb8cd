#!/usr/bin/env node
// The container image's `fulcrum` command (linked from /usr/local/bin/fulcrum): the server bundled into one file,
// dist/fulcrum.mjs (deploy/docker/bundle.mjs: it starts in about 170 ms less than the compiled files it is made
// of), found relative to this file's real path so the image layout is written down once, in the Dockerfile.
// Source maps are turned on first, so a stack trace in the logs names the TypeScript file and line.
import process from 'node:process';
import { URL } from 'node:url';

process.setSourceMapsEnabled(true);
await import(new URL('../../dist/fulcrum.mjs', import.meta.url).href);
