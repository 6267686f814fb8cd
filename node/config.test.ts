import { describe, expect, it } from 'vitest';
import {
  apiLimitsFrom,
  ConfigError,
  envNameFor,
  FULCRUM_VERSION,
  memberOptionsFrom,
  parseCommandLine,
  parseServerConfig,
  SETTINGS,
  type ServerConfig,
} from './config.js';
import { clusterIdFor, memberIdFor } from './ids.js';

const parse = (argv: string[], env: NodeJS.ProcessEnv = {}): ServerConfig => parseServerConfig(argv, env);

/** The ConfigError message for argv/env, failing the test if parsing succeeds or throws something else. */
function errorOf(argv: string[], env: NodeJS.ProcessEnv = {}): string {
  try {
    parseServerConfig(argv, env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(argv)} ${JSON.stringify(env)}`);
}

const TOKEN = 'fulcrum-cluster';

describe('defaults', () => {
  it('a bare `fulcrum` is one member named default in ./default.fulcrum on 2379/2380', () => {
    const c = parse([]);
    expect(c).toMatchObject({
      name: 'default',
      dataDir: './default.fulcrum',
      listenClientUrls: ['http://127.0.0.1:2379'],
      advertiseClientUrls: ['http://127.0.0.1:2379'],
      listenPeerUrls: ['http://127.0.0.1:2380'],
      initialAdvertisePeerUrls: ['http://127.0.0.1:2380'],
      initialCluster: 'default=http://127.0.0.1:2380',
      initialClusterState: 'new',
      initialClusterToken: TOKEN,
      heartbeatIntervalMs: 100,
      electionTimeoutMs: 1000,
      electionTicks: 10,
      snapshotCount: 10_000,
      snapshotCatchupEntries: 5_000,
      quotaBackendBytes: 2 * 1024 ** 3,
      requestBytesMax: 1.5 * 1024 ** 2,
      txnOpsMax: 128,
      listenMetricsUrls: [],
      logLevel: 'info',
      warnings: [],
    });
    const id = memberIdFor(['http://127.0.0.1:2380'], TOKEN);
    expect(c.memberId).toBe(id);
    expect([...c.initialMembers]).toEqual([[id, { name: 'default', peerUrls: ['http://127.0.0.1:2380'] }]]);
    expect(c.initialMemberIds).toEqual([id]);
    expect(c.clusterId).toBe(clusterIdFor([id], TOKEN));
    expect(c.listen).toEqual({
      client: [{ url: 'http://127.0.0.1:2379', host: '127.0.0.1', port: 2379 }],
      peer: [{ url: 'http://127.0.0.1:2380', host: '127.0.0.1', port: 2380 }],
      metrics: [],
    });
  });

  it('the data dir and the initial cluster follow --name', () => {
    const c = parse(['--name', 'n7']);
    expect(c.dataDir).toBe('./n7.fulcrum');
    expect(c.initialCluster).toBe('n7=http://127.0.0.1:2380');
  });

  it('advertised URLs default to the listen URLs; the initial cluster to <name>=<each advertised peer URL>', () => {
    const c = parse(['--name', 'a', '--listen-client-urls', 'http://10.0.0.1:3379', '--listen-peer-urls', 'http://10.0.0.1:3380,http://[::1]:3380']);
    expect(c.advertiseClientUrls).toEqual(['http://10.0.0.1:3379']);
    expect(c.initialAdvertisePeerUrls).toEqual(['http://10.0.0.1:3380', 'http://[::1]:3380']);
    expect(c.initialCluster).toBe('a=http://10.0.0.1:3380,a=http://[::1]:3380');
    expect(c.listen.peer[1]).toEqual({ url: 'http://[::1]:3380', host: '::1', port: 3380 });
    expect(c.memberId).toBe(memberIdFor(['http://10.0.0.1:3380', 'http://[::1]:3380'], TOKEN));
  });
});

describe('every flag', () => {
  const argv = [
    '--name=n1',
    '--data-dir', '/var/lib/fulcrum',
    '--listen-client-urls', 'http://0.0.0.0:2379',
    '--advertise-client-urls', 'http://db1.example:2379,http://10.0.0.1:2379',
    '--listen-peer-urls', 'http://0.0.0.0:2380',
    '--initial-advertise-peer-urls', 'http://10.0.0.1:2380',
    '--initial-cluster', 'n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380',
    '--initial-cluster-state', 'existing',
    '--initial-cluster-token', 'prod-1',
    '--heartbeat-interval', '50',
    '--election-timeout', '500',
    '--snapshot-count', '5000',
    '--experimental-snapshot-catchup-entries', '300',
    '--quota-backend-bytes', '1073741824',
    '--max-request-bytes', '2097152',
    '--max-txn-ops', '64',
    '--auth-token-ttl', '60',
    '--max-concurrent-streams', '200',
    '--max-client-connections', '500',
    '--max-response-bytes', '33554432',
    '--grpc-fast-path=false',
    '--http2-engine', 'node',
    '--listen-metrics-urls', 'http://127.0.0.1:9100,http://localhost:0',
    '--log-level', 'debug',
    '--cert-file', '/pki/s.crt',
    '--key-file', '/pki/s.key',
    '--trusted-ca-file', '/pki/ca.crt',
    '--client-cert-auth=true',
    '--peer-cert-file', '/pki/p.crt',
    '--peer-key-file', '/pki/p.key',
    '--peer-trusted-ca-file', '/pki/peer-ca.crt',
    '--peer-client-cert-auth=true',
    '--client-cert-allowed-hostname', 'app.example',
    '--client-crl-file', '/pki/client.crl',
    '--peer-crl-file', '/pki/peer.crl',
    '--peer-cert-allowed-hostname', 'member.example',
  ];
  /** Flags left out of argv because they exclude one that is in it (etcd 3.4 takes a CN or a host name, not both). */
  const EXCLUDED = new Set(['peer-cert-allowed-cn']);

  it('sets its setting', () => {
    const c = parse(argv);
    expect(c).toMatchObject({
      name: 'n1',
      dataDir: '/var/lib/fulcrum',
      listenClientUrls: ['http://0.0.0.0:2379'],
      advertiseClientUrls: ['http://db1.example:2379', 'http://10.0.0.1:2379'],
      listenPeerUrls: ['http://0.0.0.0:2380'],
      initialAdvertisePeerUrls: ['http://10.0.0.1:2380'],
      initialCluster: 'n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380',
      initialClusterState: 'existing',
      initialClusterToken: 'prod-1',
      heartbeatIntervalMs: 50,
      electionTimeoutMs: 500,
      electionTicks: 10,
      snapshotCount: 5000,
      snapshotCatchupEntries: 300,
      quotaBackendBytes: 1024 ** 3,
      requestBytesMax: 2 * 1024 ** 2,
      txnOpsMax: 64,
      authTokenTtlSeconds: 60,
      concurrentStreamsMax: 200,
      clientConnectionsMax: 500,
      grpcFastPath: false,
      http2Engine: 'node',
      responseBytesMax: 32 * 1024 ** 2,
      listenMetricsUrls: ['http://127.0.0.1:9100', 'http://localhost:0'],
      logLevel: 'debug',
      clientTls: { certFile: '/pki/s.crt', keyFile: '/pki/s.key', trustedCaFile: '/pki/ca.crt', clientCertAuth: true, allowedHostname: 'app.example', crlFile: '/pki/client.crl' },
      peerTls: { certFile: '/pki/p.crt', keyFile: '/pki/p.key', trustedCaFile: '/pki/peer-ca.crt', clientCertAuth: true, allowedHostname: 'member.example', crlFile: '/pki/peer.crl' },
    });
    expect(c.listen.metrics).toEqual([
      { url: 'http://127.0.0.1:9100', host: '127.0.0.1', port: 9100 },
      { url: 'http://localhost:0', host: 'localhost', port: 0 },
    ]);
    expect(c.listen.client).toEqual([{ url: 'http://0.0.0.0:2379', host: '0.0.0.0', port: 2379 }]);
    expect(c.memberId).toBe(memberIdFor(['http://10.0.0.1:2380'], 'prod-1'));
    const ids = [memberIdFor(['http://10.0.0.1:2380'], 'prod-1'), memberIdFor(['http://10.0.0.2:2380'], 'prod-1')];
    expect(c.initialMemberIds).toEqual(ids);
    expect(c.clusterId).toBe(clusterIdFor(ids, 'prod-1'));
  });

  it('each flag has both env names, and the env gives the same config as the flags', () => {
    const env: NodeJS.ProcessEnv = {};
    for (let i = 0; i < argv.length; i++) {
      const [flag, inline] = argv[i]!.slice(2).split('=');
      env[envNameFor(flag!, 'FULCRUM_')] = inline ?? argv[++i]!;
    }
    expect(Object.keys(env).sort()).toEqual(SETTINGS.filter((s) => !EXCLUDED.has(s.flag)).map((s) => envNameFor(s.flag, 'FULCRUM_')).sort());
    expect(env['FULCRUM_INITIAL_ADVERTISE_PEER_URLS']).toBe('http://10.0.0.1:2380');
    const fromFlags = parse(argv);
    expect(parse([], env)).toEqual(fromFlags);
    const etcdEnv = Object.fromEntries(Object.entries(env).map(([k, v]) => [k.replace(/^FULCRUM_/, 'ETCD_'), v]));
    expect(etcdEnv['ETCD_DATA_DIR']).toBe('/var/lib/fulcrum');
    expect(parse([], etcdEnv)).toEqual(fromFlags);
  });

  it('the help text names every flag and its env var', () => {
    const help = parseCommandLine(['--help'], {});
    expect(help.kind).toBe('print');
    const text = help.kind === 'print' ? help.text : '';
    for (const s of SETTINGS) {
      expect(text).toContain(s.boolean === true ? `--${s.flag} [` : `--${s.flag} <`);
      expect(text).toContain(envNameFor(s.flag, 'FULCRUM_'));
      expect(text).toContain(envNameFor(s.flag, 'ETCD_'));
    }
  });
});

describe('--http2-engine', () => {
  it('is fulcrum by default, node with --grpc-fast-path=false, takes either by name, refuses anything else, and refuses fulcrum without the fast path', () => {
    expect(parse([]).http2Engine).toBe('fulcrum');
    expect(parse(['--grpc-fast-path=false']).http2Engine).toBe('node');
    expect(parse(['--http2-engine', 'node']).http2Engine).toBe('node');
    expect(parse([], { FULCRUM_HTTP2_ENGINE: 'node' }).http2Engine).toBe('node');
    expect(parse(['--http2-engine', 'fulcrum']).http2Engine).toBe('fulcrum');
    expect(errorOf(['--http2-engine', 'nghttp2'])).toMatch(/"nghttp2" is not one of node, fulcrum/);
    expect(errorOf(['--http2-engine', 'fulcrum', '--grpc-fast-path=false'])).toMatch(/--grpc-fast-path=false needs --http2-engine=node/);
  });
});

describe('environment and precedence', () => {
  it('FULCRUM_* names are the flag upper-cased with dashes as underscores', () => {
    expect(envNameFor('initial-cluster-token', 'FULCRUM_')).toBe('FULCRUM_INITIAL_CLUSTER_TOKEN');
    expect(envNameFor('data-dir', 'ETCD_')).toBe('ETCD_DATA_DIR');
  });

  it('flag > FULCRUM_ > ETCD_ > default, and a shadowed value is reported', () => {
    expect(parse([], { ETCD_NAME: 'e' }).name).toBe('e');
    expect(parse([], { ETCD_NAME: 'e', FULCRUM_NAME: 'f' }).name).toBe('f');
    const c = parse(['--name', 'x'], { ETCD_NAME: 'e', FULCRUM_NAME: 'f' });
    expect(c.name).toBe('x');
    expect(c.warnings).toEqual(['FULCRUM_NAME=f is shadowed by --name', 'ETCD_NAME=e is shadowed by --name']);
    expect(parse(['--name', 'x'], { FULCRUM_NAME: 'x' }).warnings).toEqual([]); // same value: nothing to report
  });

  it('settings mix sources: each one takes its own highest source', () => {
    const c = parse(['--heartbeat-interval', '20'], { FULCRUM_ELECTION_TIMEOUT: '200', ETCD_HEARTBEAT_INTERVAL: '999', ETCD_MAX_TXN_OPS: '7' });
    expect([c.heartbeatIntervalMs, c.electionTimeoutMs, c.electionTicks, c.txnOpsMax]).toEqual([20, 200, 10, 7]);
  });

  it('an empty variable counts as unset', () => {
    expect(parse([], { FULCRUM_NAME: '', ETCD_NAME: 'e' }).name).toBe('e');
    expect(parse([], { FULCRUM_DATA_DIR: '' }).dataDir).toBe('./default.fulcrum');
  });

  it('unknown FULCRUM_ and ETCD_ names are reported, other variables are not', () => {
    const c = parse([], { FULCRUM_NAEM: 'x', ETCD_AUTO_COMPACTION_RETENTION: '1', ETCDCTL_API: '3', PATH: '/bin' });
    expect(c.warnings).toEqual(['ETCD_AUTO_COMPACTION_RETENTION is an etcd setting Fulcrum does not support; ignored', 'FULCRUM_NAEM is not a Fulcrum server setting; ignored']);
  });

  it('env values are validated and named in errors like flags', () => {
    expect(errorOf([], { ETCD_HEARTBEAT_INTERVAL: 'fast' })).toBe('ETCD_HEARTBEAT_INTERVAL: "fast" is not a whole number');
    expect(errorOf([], { FULCRUM_LOG_LEVEL: 'trace' })).toBe('FULCRUM_LOG_LEVEL: "trace" is not one of debug, info, warn, error');
  });
});

describe('the issue example: three founding members', () => {
  it('fulcrum --name n1 --initial-cluster n1=...,n2=...,n3=...', () => {
    const urls = ['http://127.0.0.1:2380', 'http://127.0.0.1:12380', 'http://127.0.0.1:22380'];
    const c = parse(['--name', 'n1', '--initial-cluster', `n1=${urls[0]},n2=${urls[1]},n3=${urls[2]}`]);
    const ids = urls.map((u) => memberIdFor([u], TOKEN));
    expect(new Set(ids).size).toBe(3);
    expect([...c.initialMembers]).toEqual([
      [ids[0], { name: 'n1', peerUrls: [urls[0]] }],
      [ids[1], { name: 'n2', peerUrls: [urls[1]] }],
      [ids[2], { name: 'n3', peerUrls: [urls[2]] }],
    ]);
    expect(c.memberId).toBe(ids[0]);
    expect(c.clusterId).toBe(clusterIdFor(ids, TOKEN));
    // Every member computes the same cluster id from the same flags, whatever its --name.
    const n2 = parse(['--name', 'n2', '--listen-peer-urls', urls[1]!, '--initial-cluster', c.initialCluster]);
    expect(n2.memberId).toBe(ids[1]);
    expect(n2.clusterId).toBe(c.clusterId);
  });

  it('a name may repeat to give one member several peer URLs', () => {
    const c = parse([
      '--name', 'a',
      '--initial-advertise-peer-urls', 'http://10.0.0.1:2380,http://10.1.0.1:2380',
      '--initial-cluster', 'a=http://10.1.0.1:2380,b=http://10.0.0.2:2380,a=http://10.0.0.1:2380',
    ]);
    expect([...c.initialMembers.values()]).toEqual([
      { name: 'a', peerUrls: ['http://10.1.0.1:2380', 'http://10.0.0.1:2380'] },
      { name: 'b', peerUrls: ['http://10.0.0.2:2380'] },
    ]);
    expect(c.memberId).toBe(memberIdFor(['http://10.0.0.1:2380', 'http://10.1.0.1:2380'], TOKEN));
    expect(c.initialMemberIds[0]).toBe(c.memberId);
  });

  it('the token changes every id', () => {
    const a = parse(['--initial-cluster-token', 'a']);
    const b = parse(['--initial-cluster-token', 'b']);
    expect(a.memberId).not.toBe(b.memberId);
    expect(a.clusterId).not.toBe(b.clusterId);
  });
});

describe('URLs', () => {
  it('are normalized: lower-case scheme and host, no trailing slash', () => {
    const c = parse(['--listen-client-urls', ' HTTP://LOCALHOST:2379/ ', '--initial-advertise-peer-urls', 'http://Node1.Example:2380']);
    expect(c.listenClientUrls).toEqual(['http://localhost:2379']);
    expect(c.initialAdvertisePeerUrls).toEqual(['http://node1.example:2380']);
    expect(c.initialCluster).toBe('default=http://node1.example:2380');
  });

  it('https needs the listener\'s certificate and key', () => {
    expect(errorOf(['--listen-client-urls', 'https://127.0.0.1:2379'])).toBe('--listen-client-urls: "https://127.0.0.1:2379" is https but --cert-file and --key-file are not set');
    expect(errorOf(['--initial-cluster', 'default=https://127.0.0.1:2380'])).toBe(
      '--initial-cluster has default=https://127.0.0.1:2380 but --initial-advertise-peer-urls is http://127.0.0.1:2380; they must match',
    );
    expect(errorOf([], { ETCD_LISTEN_PEER_URLS: 'https://127.0.0.1:2380' })).toBe('--listen-peer-urls: "https://127.0.0.1:2380" is https but --peer-cert-file and --peer-key-file are not set');
    expect(errorOf(['--listen-metrics-urls', 'https://127.0.0.1:9100'])).toBe('--listen-metrics-urls: "https://127.0.0.1:9100" is https but --cert-file and --key-file are not set');
  });

  it.each([
    [['--listen-client-urls', 'unix://sock:1'], '--listen-client-urls: "unix://sock:1": scheme "unix" is not supported; use http:// or https://'],
    [['--listen-client-urls', '127.0.0.1:2379'], '--listen-client-urls: "127.0.0.1:2379" is not a URL (expected http://host:port or https://host:port)'],
    [['--listen-client-urls', 'http://127.0.0.1'], '--listen-client-urls: "http://127.0.0.1" must have the form http://host:port, with an explicit port'],
    [['--listen-client-urls', 'http://127.0.0.1:99999'], '--listen-client-urls: "http://127.0.0.1:99999": port 99999 is out of range'],
    [['--listen-client-urls', 'http://127.0.0.1:2379/v3'], '--listen-client-urls: "http://127.0.0.1:2379/v3" must not have a path, query or fragment'],
    [['--listen-client-urls', 'http://u:p@127.0.0.1:2379'], '--listen-client-urls: "http://u:p@127.0.0.1:2379" must not carry a user name or password'],
    [['--listen-client-urls', 'http://[1:2:3:4:5:6:7:8:9]:2379'], '--listen-client-urls: "http://[1:2:3:4:5:6:7:8:9]:2379": "[1:2:3:4:5:6:7:8:9]" is not an IPv6 address'],
    [['--listen-client-urls', 'http://db1.example:2379'], '--listen-client-urls: "http://db1.example:2379": listen URLs need an IP address (or localhost) to bind, not a host name'],
    [['--listen-client-urls', 'http://127.0.0.1:2379,'], '--listen-client-urls: "http://127.0.0.1:2379," has an empty entry'],
    [['--listen-client-urls', 'http://127.0.0.1:1,http://127.0.0.1:1'], '--listen-client-urls: http://127.0.0.1:1 appears more than once'],
    [['--advertise-client-urls', 'http://0.0.0.0:2379'], '--advertise-client-urls: "http://0.0.0.0:2379": 0.0.0.0 cannot be advertised; give an address others can reach'],
    [['--advertise-client-urls', 'http://10.0.0.1:0'], '--advertise-client-urls: "http://10.0.0.1:0": port 0 cannot be advertised'],
    [['--listen-client-urls', 'http://0.0.0.0:2379'], '--advertise-client-urls is required when --listen-client-urls has http://0.0.0.0:2379, which others cannot reach'],
    [['--listen-peer-urls', 'http://[::]:2380'], '--initial-advertise-peer-urls is required when --listen-peer-urls has http://[::]:2380, which others cannot reach'],
    [['--listen-peer-urls', 'http://127.0.0.1:0'], '--initial-advertise-peer-urls is required when --listen-peer-urls has http://127.0.0.1:0, which others cannot reach'],
  ])('%j → %s', (argv, message) => {
    expect(errorOf(argv)).toBe(message);
  });

  it('port 0 is fine for listening once the advertised URL is given', () => {
    const c = parse(['--listen-client-urls', 'http://127.0.0.1:0', '--advertise-client-urls', 'http://127.0.0.1:2379']);
    expect(c.listen.client[0]!.port).toBe(0);
  });
});

describe('validation errors name the flag', () => {
  it.each([
    [['--name', ''], '--name: must not be empty'],
    [['--name', 'a=b'], '--name: "a=b" must not contain "=" or ","'],
    [['--data-dir', ' '], '--data-dir: must not be empty'],
    [['--initial-cluster-token', ''], '--initial-cluster-token: must not be empty'],
    [['--initial-cluster-state', 'old'], '--initial-cluster-state: "old" is not one of new, existing'],
    [['--log-level', 'verbose'], '--log-level: "verbose" is not one of debug, info, warn, error'],
    [['--heartbeat-interval', '0'], '--heartbeat-interval: must be at least 1, got 0'],
    [['--heartbeat-interval', '1.5'], '--heartbeat-interval: "1.5" is not a whole number'],
    [['--election-timeout', '-5'], '--election-timeout: "-5" is not a whole number'],
    [['--election-timeout', '1e3'], '--election-timeout: "1e3" is not a whole number'],
    [['--snapshot-count', '0'], '--snapshot-count: must be at least 1, got 0'],
    [['--max-request-bytes', '0'], '--max-request-bytes: must be at least 1, got 0'],
    [['--max-txn-ops', 'many'], '--max-txn-ops: "many" is not a whole number'],
    [['--max-concurrent-streams', '0'], '--max-concurrent-streams: must be at least 1, got 0'],
    [['--max-response-bytes', '1048576'], '--max-response-bytes: must be at least 2097152, got 1048576'],
    [['--quota-backend-bytes', '99999999999999999999'], '--quota-backend-bytes: "99999999999999999999" is not a whole number'],
    [['--heartbeat-interval', '100', '--election-timeout', '499'], '--election-timeout (499ms) must be at least 5 times --heartbeat-interval (100ms)'],
    [['--heartbeat-interval', '1000'], '--election-timeout (1000ms) must be at least 5 times --heartbeat-interval (1000ms)'],
    [['--election-timeout', '50001'], '--election-timeout (50001ms) is too long; it must be at most 50000ms'],
    [['--initial-cluster', 'n1'], '--initial-cluster: "n1" is not name=url'],
    [['--initial-cluster', '=http://127.0.0.1:2380'], '--initial-cluster: "=http://127.0.0.1:2380" is not name=url'],
    [['--initial-cluster', 'default=http://127.0.0.1:2380,x=http://127.0.0.1:2380'], '--initial-cluster: http://127.0.0.1:2380 appears more than once'],
    [['--initial-cluster', 'n2=http://127.0.0.1:2380'], '--initial-cluster: no member named "default" (--name); list this member in the initial cluster'],
    [
      ['--initial-cluster', 'default=http://127.0.0.1:2381'],
      '--initial-cluster has default=http://127.0.0.1:2381 but --initial-advertise-peer-urls is http://127.0.0.1:2380; they must match',
    ],
    [['--bogus'], "unknown option '--bogus'"],
    [['--name'], "option '--name <name>' argument missing"],
    [['serve'], 'too many arguments. Expected 0 arguments but got 1.'],
  ])('%j → %s', (argv, message) => {
    expect(errorOf(argv)).toBe(message);
  });

  it('an env value too long to be real is refused', () => {
    expect(errorOf([], { FULCRUM_INITIAL_CLUSTER: 'x'.repeat(70_000) })).toBe('FULCRUM_INITIAL_CLUSTER: value is 70000 characters; at most 65536 are allowed');
  });

  it('too many founding members is refused', () => {
    const list = ['default=http://127.0.0.1:2380', ...Array.from({ length: 64 }, (_, i) => `m${i}=http://10.0.0.${i}:2380`)].join(',');
    expect(errorOf(['--initial-cluster', list])).toBe('--initial-cluster: 65 members; at most 64 are allowed');
  });
});

describe('limits', () => {
  it('quota 0 means the default, as in etcd; big limits are allowed with a warning', () => {
    expect(parse(['--quota-backend-bytes', '0']).quotaBackendBytes).toBe(2 * 1024 ** 3);
    const c = parse(['--quota-backend-bytes', String(9 * 1024 ** 3), '--max-request-bytes', String(11 * 1024 ** 2)]);
    expect(c.warnings).toEqual([
      '--quota-backend-bytes 9663676416 exceeds the recommended maximum 8589934592',
      '--max-request-bytes 11534336 exceeds the recommended maximum 10485760',
    ]);
  });

  it('the response limit defaults to 16 MiB, and grows with --max-request-bytes so a response can carry any value', () => {
    expect(parse([]).responseBytesMax).toBe(16 * 1024 ** 2);
    expect(parse(['--max-request-bytes', String(20 * 1024 ** 2)]).responseBytesMax).toBe(20 * 1024 ** 2 + 512 * 1024);
    expect(apiLimitsFrom(parse(['--max-txn-ops', '512'])).txnOpsTotalMax).toBe(8 * 512);
  });

  it('electionTicks is the rounded ratio', () => {
    expect(parse(['--heartbeat-interval', '30', '--election-timeout', '250']).electionTicks).toBe(8);
    expect(parse(['--heartbeat-interval', '40', '--election-timeout', '200']).electionTicks).toBe(5);
  });
});

describe('the result', () => {
  it('is frozen all the way down', () => {
    const c = parse(['--initial-cluster', 'default=http://127.0.0.1:2380,b=http://10.0.0.2:2380']);
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.listenClientUrls)).toBe(true);
    expect(Object.isFrozen(c.listen.client[0])).toBe(true);
    expect(Object.isFrozen([...c.initialMembers.values()][1]!.peerUrls)).toBe(true);
    expect(() => (c.initialMembers as Map<number, unknown>).set(1, {})).toThrow(/frozen/);
    expect(() => (c.initialMembers as Map<number, unknown>).delete(c.memberId)).toThrow(/frozen/);
    expect(() => ((c as { name: string }).name = 'x')).toThrow(TypeError);
  });

  it('maps onto Member options and API limits', () => {
    const c = parse(['--name', 'n1', '--heartbeat-interval', '20', '--election-timeout', '200', '--max-request-bytes', '1000', '--max-txn-ops', '9']);
    expect(memberOptionsFrom(c)).toEqual({
      id: c.memberId,
      dataDir: './n1.fulcrum',
      initialVoters: [c.memberId],
      initialMembers: new Map([[c.memberId, { name: 'n1', peerUrls: ['http://127.0.0.1:2380'] }]]),
      clusterToken: TOKEN,
      heartbeatMs: 20,
      electionTicks: 10,
      snapshotCount: 10_000,
      snapshotCatchUpEntries: 5_000,
      maxRequestBytes: 1000,
    });
    expect(apiLimitsFrom(c)).toMatchObject({ requestBytesMax: 1000, txnOpsMax: 9 });
  });

  it('--version prints the version; parseServerConfig refuses to turn it into a config', () => {
    expect(parseCommandLine(['--version'], {})).toEqual({ kind: 'print', text: `${FULCRUM_VERSION}\n` });
    expect(errorOf(['--version'])).toBe('--version and --help print and exit; they give no server config');
    expect(parseCommandLine(['--name', 'x'], {}).kind).toBe('serve');
  });

  it('does not read process.env or process.argv', () => {
    const saved = process.env['FULCRUM_NAME'];
    process.env['FULCRUM_NAME'] = 'from-process';
    try {
      expect(parse([], {}).name).toBe('default');
    } finally {
      if (saved === undefined) delete process.env['FULCRUM_NAME'];
      else process.env['FULCRUM_NAME'] = saved;
    }
  });
});

describe('TLS flags', () => {
  const clientTls = ['--cert-file', '/pki/s.crt', '--key-file', '/pki/s.key', '--trusted-ca-file', '/pki/ca.crt'];
  const peerMtls = ['--peer-cert-file', '/pki/p.crt', '--peer-key-file', '/pki/p.key', '--peer-trusted-ca-file', '/pki/ca.crt', '--peer-client-cert-auth'];
  const peerTls = ['--peer-cert-file', '/pki/p.crt', '--peer-key-file', '/pki/p.key', '--peer-trusted-ca-file', '/pki/ca.crt'];

  it('https URLs with certificates: the scheme is part of the URL, and so of the member id', () => {
    const c = parse([
      '--listen-client-urls', 'https://127.0.0.1:2379', '--listen-peer-urls', 'https://127.0.0.1:2380', ...clientTls, '--client-cert-auth', ...peerTls,
      '--peer-client-cert-auth=true',
    ]);
    expect(c.listen.client[0]).toMatchObject({ url: 'https://127.0.0.1:2379', secure: true });
    expect(c.initialCluster).toBe('default=https://127.0.0.1:2380');
    expect(c.memberId).toBe(memberIdFor(['https://127.0.0.1:2380'], TOKEN));
    expect(c.memberId).not.toBe(memberIdFor(['http://127.0.0.1:2380'], TOKEN));
    expect(c.clientTls).toEqual({
      certFile: '/pki/s.crt', keyFile: '/pki/s.key', trustedCaFile: '/pki/ca.crt', clientCertAuth: true,
      flags: { cert: '--cert-file', key: '--key-file', ca: '--trusted-ca-file', crl: '--client-crl-file' },
    });
    expect(c.peerTls).toMatchObject({ certFile: '/pki/p.crt', clientCertAuth: true, flags: { cert: '--peer-cert-file' } });
    expect(c.warnings).toEqual([]);
  });

  it('etcd\'s environment names carry over, booleans as Go parses them', () => {
    const c = parse(['--listen-client-urls', 'https://127.0.0.1:2379'], {
      ETCD_CERT_FILE: '/pki/s.crt', ETCD_KEY_FILE: '/pki/s.key', ETCD_TRUSTED_CA_FILE: '/pki/ca.crt', ETCD_CLIENT_CERT_AUTH: 'true',
    });
    expect(c.clientTls).toMatchObject({ certFile: '/pki/s.crt', clientCertAuth: true });
    expect(parse([...clientTls, '--client-cert-auth=false']).clientTls?.clientCertAuth).toBe(false);
    expect(errorOf([...clientTls], { FULCRUM_CLIENT_CERT_AUTH: 'yes' })).toBe('FULCRUM_CLIENT_CERT_AUTH: "yes" is not true or false');
  });

  it.each([
    [['--cert-file', '/pki/s.crt'], '--cert-file needs --key-file'],
    [['--peer-key-file', '/pki/p.key'], '--peer-key-file needs --peer-cert-file'],
    [['--cert-file', '/pki/s.crt', '--key-file', '/pki/s.key', '--client-cert-auth'], '--client-cert-auth needs --trusted-ca-file: the CA that signs the certificates to accept'],
    [['--advertise-client-urls', 'https://10.0.0.1:2379'], '--advertise-client-urls: "https://10.0.0.1:2379" is https but --cert-file and --key-file are not set'],
    [['--cert-file', ''], '--cert-file: must not be empty'],
    [[...peerMtls, '--peer-cert-allowed-cn', 'm1', '--peer-cert-allowed-hostname', 'm1.example'], '--peer-cert-allowed-cn and --peer-cert-allowed-hostname are mutually exclusive (cn=m1, hostname=m1.example)'],
    [['--peer-cert-allowed-cn', 'm1'], '--peer-cert-allowed-cn needs --peer-client-cert-auth: only a verified client certificate has a name to check'],
    [['--client-cert-allowed-hostname', 'app.example'], '--client-cert-allowed-hostname needs --client-cert-auth: only a verified client certificate has a name to check'],
  ])('%j → %s', (argv, message) => {
    expect(errorOf(argv)).toBe(message);
  });

  it('--peer-cert-allowed-cn from the command line or either env name; empty (etcd\'s default) checks nothing', () => {
    expect(parse([...peerMtls, '--peer-cert-allowed-cn', 'm1']).peerTls).toMatchObject({ allowedCn: 'm1' });
    expect(parse(peerMtls, { ETCD_PEER_CERT_ALLOWED_CN: 'm2' }).peerTls).toMatchObject({ allowedCn: 'm2' });
    expect(parse(peerMtls, { FULCRUM_PEER_CERT_ALLOWED_CN: 'm3', ETCD_PEER_CERT_ALLOWED_CN: 'm2' }).peerTls).toMatchObject({ allowedCn: 'm3' });
    const off = parse([...peerMtls, '--peer-cert-allowed-cn', '', '--peer-cert-allowed-hostname', '']).peerTls!;
    expect([off.allowedCn, off.allowedHostname]).toEqual([undefined, undefined]);
    // A name check without client-cert-auth is refused above; with an empty name there is nothing to refuse.
    expect(parse(['--peer-cert-allowed-cn', '']).peerTls).toBeUndefined();
  });

  it('certificates with only http URLs are allowed (as in etcd) but warned about', () => {
    expect(parse(clientTls).warnings).toEqual(['--cert-file is set but no --listen-client-urls URL is https://; the certificate is not served']);
    expect(parse(['--peer-trusted-ca-file', '/pki/ca.crt']).warnings).toEqual([
      '--peer-trusted-ca-file and --peer-client-cert-auth have no effect without --peer-cert-file and --peer-key-file',
    ]);
  });
});
