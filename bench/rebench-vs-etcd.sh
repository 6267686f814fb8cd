#!/usr/bin/env bash
# Re-measure after the snapshot/fsync fixes: Fulcrum (npm run cluster) vs etcd 3.4, same settings, alternating.
# Superseded by `npm run bench` (bench/cli.ts), which starts and stops its own clusters on ports 12400+ and
# measures more workloads; kept because docs/performance.md's "After the snapshot and fsync fixes" section was
# measured with it. It uses the default ports (2379, ...) and stops members with pkill: not for a shared machine.
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
command -v etcd >/dev/null || { echo "etcd is not installed: apt-get install -y etcd-server"; exit 1; }
FDIR=$(mktemp -d); EDIR=$(mktemp -d)
cd $FDIR && setsid npx --prefix "$REPO" tsx "$REPO/scripts/cluster.ts" > $FDIR/cluster.log 2>&1 &
for i in 1 2 3; do
  etcd --name e$i --data-dir $EDIR/e$i --listen-client-urls http://127.0.0.1:$((22379+i*10000)) --advertise-client-urls http://127.0.0.1:$((22379+i*10000)) --listen-peer-urls http://127.0.0.1:$((22380+i*10000)) --initial-advertise-peer-urls http://127.0.0.1:$((22380+i*10000)) --initial-cluster e1=http://127.0.0.1:32380,e2=http://127.0.0.1:42380,e3=http://127.0.0.1:52380 --initial-cluster-state new --initial-cluster-token etcd-bench --heartbeat-interval 100 --election-timeout 1000 > $EDIR/e$i.log 2>&1 &
done
sleep 10
cd "$REPO"
for round in 1 2; do
  npx tsx bench/load.ts --endpoints 127.0.0.1:2379,127.0.0.1:12379,127.0.0.1:22379 --label fulcrum --duration 6 --warmup 1 --json /tmp/rebench-fulcrum-$round.json 2>&1 | grep -v "npm warn"
  npx tsx bench/load.ts --endpoints 127.0.0.1:32379,127.0.0.1:42379,127.0.0.1:52379 --label etcd --duration 6 --warmup 1 --json /tmp/rebench-etcd-$round.json 2>&1 | grep -v "npm warn"
done
grep -c "became leader" $FDIR/cluster.log
pkill -INT -f "scripts/cluster.ts"; pkill -f "etcd --name e"; sleep 4
rm -rf $FDIR $EDIR
