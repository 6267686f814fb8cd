// A service instance in its own process, for the tests that kill -9 it: a Who gRPC server on the given port
// that registers itself (self-registration) and prints its lease.
//   usage: instance.ts <endpoint> <service> <id> <ttl seconds> <grpc port>
import { Client } from '../../index.js';
import { Registry } from '../index.js';
import { startWhoServer } from '../testing/who.js';

const [endpoint, service, id, ttl, port] = process.argv.slice(2);
await startWhoServer(id!, Number(port));
const client = new Client({ endpoints: [endpoint!], attemptTimeoutMs: 2_000 });
const registration = await new Registry(client).register(service!, { id: id!, address: `127.0.0.1:${port}`, metadata: { pid: process.pid }, ttl: Number(ttl) });
console.log(`registered ${registration.leaseId!.toString(16)}`);
