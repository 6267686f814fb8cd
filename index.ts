// The public surface of the `fulcrum` package: run a member inside your process, or a server.
export { startMember, LocalClient, FulcrumError, type StartMemberOptions, type EmbeddedMember, type LeaseHandle, type WatchStream } from './node/embedded.js';
export { startServer, type FulcrumServer } from './node/server.js';
export { parseServerConfig, type ServerConfig } from './node/config.js';
