import { describe, expect, it } from 'vitest';
import { captureLogs, CAPTURED_LINES_MAX, componentLogger, createLogger, nameMemberInLogs } from './log.js';

describe('logs', () => {
  it('carry component and member (hex) fields', () => {
    const logs = captureLogs({ memberId: 0xbeef, component: 'server' });
    logs.logger.info({ term: 2 }, 'became leader');
    componentLogger(logs.logger, 'raft').warn('lost quorum');
    expect(logs.records().map(({ level, msg, component, member, term }) => ({ level, msg, component, member, term }))).toEqual([
      { level: 'info', msg: 'became leader', component: 'server', member: 'beef', term: 2 },
      { level: 'warn', msg: 'lost quorum', component: 'raft', member: 'beef', term: undefined },
    ]);
    expect(logs.find('quorum', 'raft')).toHaveLength(1);
    expect(logs.find('quorum', 'wal')).toHaveLength(0);
    logs.clear();
    expect(logs.records()).toEqual([]);
  });

  it('honour the level', () => {
    const logs = captureLogs({ level: 'warn' });
    logs.logger.info('hidden');
    logs.logger.debug('hidden');
    logs.logger.error('shown');
    expect(logs.records().map((r) => r.msg)).toEqual(['shown']);
  });

  it('a member named after its loggers were made (a joiner learns its id late) is named in every one given', () => {
    const logs = captureLogs({ component: 'server' });
    const tls = componentLogger(logs.logger, 'tls');
    const other = componentLogger(logs.logger, 'other');
    nameMemberInLogs([logs.logger, tls], 0xbeef);
    logs.logger.info('root');
    tls.info('child');
    other.info('not given'); // why the children must be passed: naming the root does not reach them
    componentLogger(logs.logger, 'later').info('made after');
    expect(logs.records().map(({ msg, component, member }) => ({ msg, component, member }))).toEqual([
      { msg: 'root', component: 'server', member: 'beef' },
      { msg: 'child', component: 'tls', member: 'beef' },
      { msg: 'not given', component: 'other', member: undefined },
      { msg: 'made after', component: 'later', member: 'beef' },
    ]);
  });

  it('a capture keeps a bounded number of lines', () => {
    const logs = captureLogs();
    for (let i = 0; i < CAPTURED_LINES_MAX + 5; i++) logs.logger.info(`line ${i}`);
    expect(logs.records()).toHaveLength(CAPTURED_LINES_MAX);
    expect(logs.records()[0]!.msg).toBe('line 5');
  });

  it('createLogger writes JSON lines with an ISO time to the given destination', () => {
    const lines: string[] = [];
    createLogger({ level: 'info', component: 'http', destination: { write: (s: string) => void lines.push(s) } }).info('hello');
    const rec = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(rec).toMatchObject({ level: 30, component: 'http', msg: 'hello' });
    expect(rec['time']).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(rec).not.toHaveProperty('member');
  });
});
