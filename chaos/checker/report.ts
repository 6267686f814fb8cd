// The HTML report: one self-contained file (inline CSS and SVG, no scripts, nothing fetched) that draws the
// operations on a timeline per process, shades the nemesis's faults, and for a violation marks where
// linearization became impossible.
//
// Reading the timeline: one lane per process; a bar runs from an operation's invocation to its completion,
// green for ok, grey for fail, amber for info (it runs off to the right: its effect may come at any later time).
// For a violation, the operations of the failing key are drawn in full colour and the others faded; the
// blocking operation (it returned, and no order could place it) is outlined in red, the operations that were
// pending with it in orange, the longest linearizable prefix in blue, and a red line marks the moment.
import { writeFileSync } from 'node:fs';
import type { HistoryEvent, NemesisEvent } from '../history.js';
import type { CheckResult, Violation } from './check.js';
import { describeOperation } from './models.js';
import { type Operation, toOperations } from './operations.js';

/** Beyond this many operations the timeline shows the ones nearest the violation (or the start), not all. */
export const OPS_DRAWN_MAX = 4000;
/** How many operations of the linearizable prefix the violation section lists (the last ones, nearest the point). */
const PREFIX_LISTED_MAX = 25;
const LANE_HEIGHT = 18;
const BAR_HEIGHT = 12;
const LEFT_MARGIN = 70;
const TOP_MARGIN = 40;
const WIDTH_MIN = 1000;
const WIDTH_MAX = 16000;
const PIXELS_PER_OP = 8;
const AXIS_TICKS = 10;

/** The marker a reader (or a test) can search for: present exactly when a violation is drawn. */
export const VIOLATION_MARKER = 'linearization-impossible';

export function writeReport(result: CheckResult, events: readonly HistoryEvent[], file: string, nemesis?: readonly NemesisEvent[]): void {
  writeFileSync(file, renderReport(result, events, nemesis ?? []));
}

export function renderReport(result: CheckResult, events: readonly HistoryEvent[], nemesis: readonly NemesisEvent[]): string {
  const ops = toOperations(events);
  const clock = clockOf(events);
  const body = [
    summarySection(result, ops),
    result.violation === undefined ? '' : violationSection(result.violation, clock),
    keysSection(result),
    timelineSection(ops, result.violation, nemesis, clock),
  ].join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fulcrum-check: ${escape(result.verdict)}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { margin: 0 0 8px; } .linearizable { color: #1a7f37; } .not-linearizable { color: #c62828; } .unknown { color: #b26a00; }
table { border-collapse: collapse; margin: 8px 0 16px; } td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
code { background: #f4f4f4; padding: 0 3px; } .scroll { overflow-x: auto; border: 1px solid #ddd; }
.legend span { display: inline-block; margin-right: 14px; } .swatch { display: inline-block; width: 14px; height: 10px; margin-right: 4px; vertical-align: middle; }
</style></head><body>
${body}
</body></html>
`;
}

/** How event times are shown: Fulcrum's nanoseconds as milliseconds since the first event, Jepsen's positions as they are. */
interface Clock {
  readonly unit: string;
  show(time: number): string;
}

function clockOf(events: readonly HistoryEvent[]): Clock {
  const positional = events.every((e, i) => e.time === i);
  if (positional) return { unit: 'event position', show: (t) => (Number.isFinite(t) ? String(t) : '∞') };
  const origin = events.reduce((low, e) => Math.min(low, e.time), events[0]?.time ?? 0);
  return { unit: 'ms since the first event', show: (t) => (Number.isFinite(t) ? ((t - origin) / 1e6).toFixed(3) : '∞') };
}

function summarySection(result: CheckResult, ops: readonly Operation[]): string {
  const count = (outcome: string): number => ops.filter((o) => o.outcome === outcome).length;
  return `<h1 class="${result.verdict}">${escape(result.verdict)}</h1>
<p>model <code>${escape(result.model)}</code> · ${result.operations} operations (${count('ok')} ok, ${count('fail')} fail,
${count('info')} info) · ${result.keys} key(s) · checked in ${result.elapsedMs.toFixed(1)} ms</p>`;
}

function violationSection(v: Violation, clock: Clock): string {
  const shown = v.prefix.slice(-PREFIX_LISTED_MAX);
  const skipped = v.prefix.length - shown.length;
  const row = (op: Operation, role: string): string =>
    `<tr><td>${escape(role)}</td><td>${escape(describeOperation(op))}</td><td>${op.process}</td><td>${op.outcome}</td>` +
    `<td>${clock.show(op.callTime)} – ${clock.show(op.returnTime)}</td><td>${op.callIndex}</td></tr>`;
  return `<h2 id="${VIOLATION_MARKER}">Where linearization became impossible</h2>
<p>Key <code>${escape(keyLabel(v.key))}</code>, at ${escape(clock.show(v.time))} (${escape(clock.unit)}): the longest
linearizable prefix has ${v.prefix.length} operation(s) and leaves the value <code>${escape(v.state)}</code>.
The operation below returned there, and no order of the pending operations could place it.</p>
<table><tr><th>role</th><th>operation</th><th>process</th><th>outcome</th><th>invoke – complete</th><th>event</th></tr>
${row(v.blocking, 'could not be placed (returned)')}
${v.pending.filter((op) => op.id !== v.blocking.id).map((op) => row(op, 'pending, not placeable next')).join('\n')}
</table>
<p>The end of the longest linearizable prefix, in linearization order${skipped > 0 ? ` (the first ${skipped} left out)` : ''}:</p>
<table><tr><th>#</th><th>operation</th><th>process</th><th>outcome</th><th>invoke – complete</th><th>event</th></tr>
${shown.map((op, i) => row(op, String(skipped + i + 1))).join('\n')}
</table>`;
}

function keysSection(result: CheckResult): string {
  const rows = result.perKey.map(
    (k) =>
      `<tr><td>${escape(keyLabel(k.key))}</td><td class="${k.verdict}">${k.verdict}${k.reason === undefined ? '' : ` (${k.reason})`}</td>` +
      `<td>${k.operations}</td><td>${k.configurations}</td><td>${k.elapsedMs.toFixed(1)}</td></tr>`,
  );
  return `<h2>Keys</h2>
<table><tr><th>key</th><th>verdict</th><th>operations searched</th><th>configurations</th><th>ms</th></tr>
${rows.join('\n')}
</table>`;
}

function timelineSection(ops: readonly Operation[], v: Violation | undefined, nemesis: readonly NemesisEvent[], clock: Clock): string {
  const drawn = chooseDrawn(ops, v);
  const finite = drawn.flatMap((o) => [o.callTime, o.returnTime]).filter(Number.isFinite);
  const start = finite.reduce((low, t) => Math.min(low, t), finite[0] ?? 0);
  const end = finite.reduce((high, t) => Math.max(high, t), start + 1);
  const width = Math.min(WIDTH_MAX, Math.max(WIDTH_MIN, drawn.length * PIXELS_PER_OP));
  const processes = [...new Set(drawn.map((o) => o.process))].sort((a, b) => a - b);
  const laneOf = new Map(processes.map((p, i) => [p, i]));
  const plotRight = LEFT_MARGIN + width;
  const x = (t: number): number => (Number.isFinite(t) ? LEFT_MARGIN + ((t - start) / (end - start)) * width : plotRight + 12);
  const height = TOP_MARGIN + processes.length * LANE_HEIGHT + 34;
  const roles = violationRoles(v);
  const parts = [
    ...nemesisShading(nemesis, x, start, end, height),
    ...processes.map((p, i) => `<text x="4" y="${TOP_MARGIN + i * LANE_HEIGHT + 12}" font-size="11">p${p}</text>`),
    ...axisTicks(start, end, x, height - 8, clock),
    ...drawn.map((op) => bar(op, laneOf.get(op.process)!, x, roles, v, clock)),
    ...(v === undefined ? [] : [impossibleLine(x(v.time), height)]),
  ];
  const note = drawn.length < ops.length ? `<p>Showing ${drawn.length} of ${ops.length} operations, those nearest ${v === undefined ? 'the start' : 'the violation'}.</p>` : '';
  return `<h2>Timeline</h2>
<p class="legend">time axis: ${escape(clock.unit)}, ${escape(clock.show(start))} to ${escape(clock.show(end))} ·
<span><i class="swatch" style="background:#2e9e5b"></i>ok</span><span><i class="swatch" style="background:#9e9e9e"></i>fail</span>
<span><i class="swatch" style="background:#f0a020"></i>info (unknown)</span><span><i class="swatch" style="background:#f8d7e0"></i>fault</span>
${v === undefined ? '' : '<span style="color:#c62828">red: could not be placed</span><span style="color:#e67e00">orange: pending</span><span style="color:#1565c0">blue: linearizable prefix</span>'}</p>
${note}
<div class="scroll"><svg xmlns="http://www.w3.org/2000/svg" width="${plotRight + 40}" height="${height}">
${parts.join('\n')}
</svg></div>`;
}

/** Evenly spaced time labels along the bottom of the plot. */
function axisTicks(start: number, end: number, x: (t: number) => number, y: number, clock: Clock): string[] {
  const ticks: string[] = [];
  for (let i = 0; i <= AXIS_TICKS; i++) {
    const t = start + ((end - start) * i) / AXIS_TICKS;
    const at = x(t).toFixed(1);
    ticks.push(
      `<line x1="${at}" y1="${y - 12}" x2="${at}" y2="${y - 8}" stroke="#888"/>`,
      `<text x="${at}" y="${y}" font-size="10" fill="#555" text-anchor="middle">${escape(clock.show(t))}</text>`,
    );
  }
  return ticks;
}

/** All operations when few; otherwise those whose invocation is nearest the violation (or the start). */
function chooseDrawn(ops: readonly Operation[], v: Violation | undefined): readonly Operation[] {
  if (ops.length <= OPS_DRAWN_MAX) return ops;
  const focus = v?.time ?? ops[0]!.callTime;
  const focusIndex = v === undefined ? 0 : Math.max(0, ops.findIndex((o) => o.callTime >= focus));
  const from = Math.max(0, Math.min(focusIndex - OPS_DRAWN_MAX / 2, ops.length - OPS_DRAWN_MAX));
  return ops.slice(from, from + OPS_DRAWN_MAX);
}

type Role = 'blocking' | 'pending' | 'prefix';

function violationRoles(v: Violation | undefined): Map<number, Role> {
  const roles = new Map<number, Role>();
  if (v === undefined) return roles;
  for (const op of v.prefix) roles.set(op.id, 'prefix');
  for (const op of v.pending) roles.set(op.id, 'pending');
  roles.set(v.blocking.id, 'blocking');
  return roles;
}

const FILL = { ok: '#2e9e5b', fail: '#9e9e9e', info: '#f0a020' } as const;
const STROKE: Record<Role, string> = { blocking: '#c62828', pending: '#e67e00', prefix: '#1565c0' };

function bar(op: Operation, lane: number, x: (t: number) => number, roles: Map<number, Role>, v: Violation | undefined, clock: Clock): string {
  const x0 = x(op.callTime);
  const x1 = Math.max(x(op.returnTime), x0 + 2);
  const y = TOP_MARGIN + lane * LANE_HEIGHT + (LANE_HEIGHT - BAR_HEIGHT) / 2;
  const role = roles.get(op.id);
  const otherKey = v !== undefined && (op.key ?? null) !== v.key;
  const stroke = role === undefined ? '' : ` stroke="${STROKE[role]}" stroke-width="${role === 'blocking' ? 3 : 1.5}"`;
  const opacity = otherKey ? ' opacity="0.3"' : '';
  const title = `${describeOperation(op)} · p${op.process} · ${op.outcome} · ${clock.show(op.callTime)} – ${clock.show(op.returnTime)} · event ${op.callIndex}${op.error === undefined ? '' : ` · ${op.error}`}${role === undefined ? '' : ` · ${role}`}`;
  return `<rect x="${x0.toFixed(1)}" y="${y}" width="${(x1 - x0).toFixed(1)}" height="${BAR_HEIGHT}" rx="2" fill="${FILL[op.outcome]}"${stroke}${opacity}><title>${escape(title)}</title></rect>`;
}

/** Shades each fault from its start to its stop (or to the end of the plot if it never stopped). */
function nemesisShading(nemesis: readonly NemesisEvent[], x: (t: number) => number, start: number, end: number, height: number): string[] {
  const open = new Map<string, NemesisEvent>();
  const shapes: string[] = [];
  const shade = (from: NemesisEvent, until: number): void => {
    const x0 = x(Math.max(start, from.time));
    const x1 = x(Math.min(end, until));
    if (x1 < x0) return;
    const label = from.detail === undefined ? from.fault : `${from.fault} ${from.detail}`;
    shapes.push(
      `<rect x="${x0.toFixed(1)}" y="${TOP_MARGIN - 14}" width="${Math.max(1, x1 - x0).toFixed(1)}" height="${height - TOP_MARGIN}" fill="#f8d7e0" opacity="0.6"><title>${escape(label)}</title></rect>`,
      `<text x="${x0.toFixed(1)}" y="${TOP_MARGIN - 18}" font-size="10" fill="#a0304a">${escape(from.fault)}</text>`,
    );
  };
  for (const event of [...nemesis].sort((a, b) => a.time - b.time)) {
    const started = open.get(event.fault);
    if (event.phase === 'start' && started === undefined) open.set(event.fault, event);
    if (event.phase === 'stop' && started !== undefined) {
      shade(started, event.time);
      open.delete(event.fault);
    }
  }
  for (const started of open.values()) shade(started, end);
  return shapes;
}

function impossibleLine(at: number, height: number): string {
  return `<g class="${VIOLATION_MARKER}"><line x1="${at.toFixed(1)}" y1="${TOP_MARGIN - 24}" x2="${at.toFixed(1)}" y2="${height}" stroke="#c62828" stroke-width="2" stroke-dasharray="4 3"/>` +
    `<text x="${(at + 4).toFixed(1)}" y="${TOP_MARGIN - 26}" font-size="11" fill="#c62828">linearization impossible here</text></g>`;
}

function keyLabel(key: string | null): string {
  return key === null ? '(single register)' : key;
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
