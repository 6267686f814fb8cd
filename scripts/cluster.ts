// `npm run cluster`: a local 3-member Fulcrum cluster in the foreground. Member i serves clients on
// 2379+10000*(i-1) and peers on 2380+10000*(i-1), with data under ./cluster.fulcrum/. Ctrl-C (SIGINT) or SIGTERM
// stops every member cleanly; a second signal kills them.
import { localClusterSpecs, ProcessCluster } from '../node/testing/process-cluster.js';

const cluster = new ProcessCluster({
  members: localClusterSpecs('./cluster.fulcrum'),
  echo: (name, line) => process.stderr.write(`[${name}] ${line}\n`),
  ownProcessGroups: true,
});
cluster.start();
process.stdout.write(`fulcrum cluster: 3 members\n  endpoints: ${cluster.endpoints.join(',')}\n  try: ETCDCTL_API=3 etcdctl --endpoints ${cluster.endpoints.join(',')} endpoint status -w table\n`);

let signals = 0;
const onSignal = (): void => {
  signals++;
  if (signals > 1) {
    void cluster.kill().then(() => process.exit(1));
    return;
  }
  process.stdout.write('fulcrum cluster: stopping\n');
  void cluster.stop().then(() => process.exit(0));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
await Promise.all(cluster.members.map((m) => m.waitExit()));
process.stdout.write('fulcrum cluster: all members exited\n');
