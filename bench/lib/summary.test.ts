// The pure parts of `npm run bench`'s reporting: medians and ratios, the issue's target checks, the standing
// sentence, the docs splice (hand-written text outside the markers survives) and the chart. No processes.
import { describe, expect, it } from 'vitest';
import { latencyThroughputSvg, putPoints } from './chart.js';
import { BEGIN_MARKER, END_MARKER, spliceSection } from './docs.js';
import { median, standing, summarize, targetChecks } from './summary.js';
import type { Row } from './workloads.js';

function row(system: 'fulcrum' | 'etcd', name: string, round: number, metrics: Record<string, number>): Row {
  return { row: name, workload: name.startsWith('put') ? 'put' : (name as Row['workload']), system, round, description: '', metrics, errors: 0, errorsByKind: {}, notes: [] };
}

describe('summary', () => {
  it('takes the median of each system over its rounds and the ratio Fulcrum/etcd', () => {
    expect(median([])).toBeNull();
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    const lines = summarize([
      row('fulcrum', 'put-10x100', 1, { opsPerSec: 100, p99Ms: 50 }),
      row('etcd', 'put-10x100', 1, { opsPerSec: 400, p99Ms: 20 }),
      row('fulcrum', 'put-10x100', 2, { opsPerSec: 300, p99Ms: 70 }),
      row('etcd', 'put-10x100', 2, { opsPerSec: 200, p99Ms: 40 }),
      row('fulcrum', 'put-10x100', 3, { opsPerSec: 200, p99Ms: 60 }),
    ]);
    expect(lines.map((l) => [l.row, l.metric, l.fulcrum, l.etcd, l.ratio, l.runs])).toEqual([
      ['put-10x100', 'opsPerSec', 200, 300, 0.67, { fulcrum: 3, etcd: 2 }],
      ['put-10x100', 'p99Ms', 60, 30, 2, { fulcrum: 3, etcd: 2 }],
    ]);
  });

  it('has no ratio when a system is missing or etcd measured 0', () => {
    const lines = summarize([row('fulcrum', 'failover', 1, { lostWrites: 0, unavailableMs: 2000 }), row('etcd', 'failover', 1, { lostWrites: 0 })]);
    expect(lines.map((l) => [l.metric, l.ratio, l.etcd])).toEqual([
      ['lostWrites', null, 0],
      ['unavailableMs', null, null],
    ]);
  });

  it('checks the targets and says where Fulcrum stands, each way round', () => {
    const lines = summarize([
      row('fulcrum', 'put-1x1', 1, { p50Ms: 1.1 }),
      row('etcd', 'put-1x1', 1, { p50Ms: 1 }),
      row('fulcrum', 'put-10x100', 1, { opsPerSec: 1000, p99Ms: 10 }),
      row('etcd', 'put-10x100', 1, { opsPerSec: 500, p99Ms: 20 }),
      row('fulcrum', 'get-linearizable', 1, { opsPerSec: 95, p99Ms: 30 }),
      row('etcd', 'get-linearizable', 1, { opsPerSec: 100, p99Ms: 20 }),
      row('fulcrum', 'failover', 1, { unavailableMs: 3000, lostWrites: 0 }),
      row('etcd', 'failover', 1, { unavailableMs: 2000, lostWrites: 0 }),
    ]);
    const met = Object.fromEntries(targetChecks(lines).map((c) => [c.target.split(':')[0], c.met]));
    expect(met).toEqual({
      'put throughput, 100 in flight': true,
      'put p99, 100 in flight': true,
      'linearizable get throughput, 100 in flight': false,
      'linearizable get p99, 100 in flight': false,
      'single-request put latency (p50, 1 in flight)': true,
      'failover, time until writes succeed': false,
      'failover, acknowledged writes lost by Fulcrum': true,
      'memory per member (largest RSS after the size load)': null,
    });
    const st = standing(lines);
    expect(st.ahead.map((s) => s.split(' ')[0])).toEqual(['put-10x100']);
    expect(st.level.map((s) => s.split(' ')[0])).toEqual(['put-1x1', 'get-linearizable']);
    expect(st.behind.map((s) => s.split(' ')[0])).toEqual(['failover']);
  });

  it('checks a target against the unrounded ratio: 3,858 against 3,871 prints 1.00 but is below 1.0', () => {
    const lines = summarize([row('fulcrum', 'put-10x100', 1, { opsPerSec: 3858 }), row('etcd', 'put-10x100', 1, { opsPerSec: 3871 })]);
    const check = targetChecks(lines).find((c) => c.target.startsWith('put throughput'))!;
    expect([check.value, check.met]).toEqual([0.997, false]);
  });
});

describe('docs splice', () => {
  const section = `${BEGIN_MARKER}\nnew table\n${END_MARKER}`;

  it('replaces only what is between the markers', () => {
    const page = `# Title\n\nprose before\n\n${BEGIN_MARKER}\nold table\n${END_MARKER}\n\nprose after\n`;
    expect(spliceSection(page, section, '## Anchor')).toBe(`# Title\n\nprose before\n\n${section}\n\nprose after\n`);
  });

  it('inserts the section under the anchor heading the first time, or at the end without one', () => {
    expect(spliceSection('# T\n## Anchor\ntext\n', section, '## Anchor')).toBe(`# T\n## Anchor\n\n${section}\ntext\n`);
    expect(spliceSection('# T\n', section, '## Anchor')).toBe(`# T\n\n${section}\n`);
  });
});

describe('chart', () => {
  it('draws one median point per put level and system, both percentiles, on log axes', () => {
    const rows = [
      row('fulcrum', 'put-1x1', 1, { opsPerSec: 100, p50Ms: 5, p99Ms: 20 }),
      row('fulcrum', 'put-10x100', 1, { opsPerSec: 1000, p50Ms: 50, p99Ms: 200 }),
      row('etcd', 'put-1x1', 1, { opsPerSec: 700, p50Ms: 1, p99Ms: 5 }),
      row('etcd', 'put-10x100', 1, { opsPerSec: 3000, p50Ms: 25, p99Ms: 120 }),
      row('etcd', 'put-10x100', 2, { opsPerSec: 0, p50Ms: 0, p99Ms: 0 }),
    ];
    expect(putPoints(rows, 'fulcrum').map((p) => p.level)).toEqual(['1x1', '10x100']);
    // The median of 3000 and 0 is 1500: a failed round pulls the median down rather than vanishing.
    expect(putPoints(rows, 'etcd')[1]!.opsPerSec).toBe(1500);
    const svg = latencyThroughputSvg({ fulcrum: putPoints(rows, 'fulcrum'), etcd: putPoints(rows, 'etcd') }, 'a <title>');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('a &lt;title&gt;');
    expect(svg.match(/<path /g)).toHaveLength(4);
    expect(svg).not.toContain('NaN');
  });
});
