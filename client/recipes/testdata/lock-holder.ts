// A lock holder in its own process, for the tests that kill -9 or SIGSTOP it. It takes the lock, prints its
// token, and then, on "write <store url>" from stdin, writes as a stale holder would: once through a fenced
// transaction, once as a plain put, and to an external store with and without its token.
//   usage: lock-holder.ts <endpoint> <lock name> <ttl seconds>
import { createInterface } from 'node:readline';
import { Client, Op } from '../../index.js';
import { Lock } from '../index.js';

const [endpoint, name, ttl] = process.argv.slice(2);
const client = new Client({ endpoints: [endpoint!], attemptTimeoutMs: 2_000 });
const held = await new Lock(client, name!, { ttlSeconds: Number(ttl) }).lock();
held.on('lost', (e) => console.log(`lost ${e.reason}`));
console.log(`held ${held.token} ${held.lease.id.toString(16)}`);

async function post(url: string, token: number | undefined): Promise<number> {
  const res = await fetch(url, { method: 'POST', body: JSON.stringify({ value: 'from-the-stale-holder', token }) });
  return res.status;
}

for await (const line of createInterface({ input: process.stdin })) {
  const [cmd, url] = line.split(' ');
  if (cmd !== 'write') continue;
  // The stale holder does not look at held.signal here on purpose: it is the holder that paused at the worst
  // moment. Only the fence can stop its writes.
  const fenced = await held.txn().then(Op.put('fenced/value', 'from-the-stale-holder')).commit();
  console.log(`fenced-txn ${fenced.succeeded}`);
  await client.put('unfenced/value', 'from-the-stale-holder');
  console.log('unfenced-put ok');
  console.log(`store-naive ${await post(`${url}/naive`, undefined)}`);
  console.log(`store-fenced ${await post(`${url}/fenced`, held.token)}`);
  console.log('done');
}
