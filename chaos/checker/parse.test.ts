// The three input formats, their auto-detection, and clear errors for input that is not a history.
import { describe, expect, it } from 'vitest';
import { readEdn, Keyword, EdnMap, toPlain } from './edn.js';
import { checkHistory, detectFormat, HistoryError, parseEdn, parseHistory, parseJepsenLog, parseJsonl, splitIndependentKeys } from './index.js';

describe('jsonl', () => {
  it('reads events and separates nemesis lines', () => {
    const text = [
      '{"process":0,"type":"invoke","f":"put","key":"a","value":1,"time":100}',
      '{"time":150,"phase":"start","fault":"partition","detail":"n1 | n2 n3"}',
      '{"process":0,"type":"ok","f":"put","key":"a","value":1,"time":200}',
      '',
    ].join('\n');
    const parsed = parseHistory(text);
    expect(parsed.format).toBe('jsonl');
    expect(parsed.events).toHaveLength(2);
    expect(parsed.events[1]).toMatchObject({ type: 'ok', key: 'a', time: 200, index: 1 });
    expect(parsed.nemesis).toEqual([{ time: 150, phase: 'start', fault: 'partition', detail: 'n1 | n2 n3' }]);
    expect(checkHistory(parseJsonl(text), { model: 'kv' }).verdict).toBe('linearizable');
  });

  it('names the line of a broken event', () => {
    expect(() => parseJsonl('{"process":0,"type":"invoke","f":"put","time":1}\n{"process":0,"type":"done","f":"put","time":2}')).toThrow(
      /line 2: event 1: "type" must be invoke, ok, fail or info/,
    );
    expect(() => parseJsonl('{"process":0,"type":"invoke","f":"put","time":1}\n{oops')).toThrow(/line 2: not JSON/);
    expect(() => parseJsonl('{"process":"zero","type":"invoke","f":"put","time":1}')).toThrow(/"process" must be an integer/);
  });
});

describe('edn', () => {
  it('reads the values Jepsen writes', () => {
    const value = readEdn('{:a nil, :b [1 2 "x"], :c #{:k}, :d -3.5, :e \\a, #_ :skipped :f true}', 'test');
    expect(value).toBeInstanceOf(EdnMap);
    expect(toPlain(value)).toEqual({ a: null, b: [1, 2, 'x'], c: [':k'], d: -3.5, e: 'a', f: true });
    expect((value as EdnMap).get('c')).toEqual([new Keyword('k')]);
  });

  it('reads a history.edn with tagged records, :time and the nemesis', () => {
    const text = [
      '{:type :invoke, :f :write, :value 3, :process 0, :time 1000, :index 0}',
      '{:type :info, :f :start, :value nil, :process :nemesis, :time 1500}',
      '#jepsen.history.Op{:type :ok, :f :write, :value 3, :process 0, :time 2000, :index 1}',
      '{:type :invoke, :f :read, :value nil, :process 1, :time 3000}',
      '{:type :ok, :f :read, :value 3, :process 1, :time 4000}',
      '{:type :info, :f :stop, :value :healed, :process :nemesis, :time 4500}',
    ].join('\n');
    const parsed = parseHistory(text);
    expect(parsed.format).toBe('edn');
    expect(parsed.events.map((e) => [e.process, e.type, e.f, e.value, e.time])).toEqual([
      [0, 'invoke', 'write', 3, 1000],
      [0, 'ok', 'write', 3, 2000],
      [1, 'invoke', 'read', null, 3000],
      [1, 'ok', 'read', 3, 4000],
    ]);
    expect(parsed.nemesis.map((n) => [n.phase, n.time])).toEqual([
      ['start', 1500],
      ['stop', 4500],
    ]);
    expect(checkHistory(parsed.events, { model: 'register' }).verdict).toBe('linearizable');
  });

  it('reads kv histories with :key, and cas pairs as vectors', () => {
    const events = parseEdn(
      [
        '{:process 0, :type :invoke, :f :put, :key "x", :value 1}',
        '{:process 0, :type :ok, :f :put, :key "x", :value 1}',
        '{:process 1, :type :invoke, :f :cas, :key "x", :value [1 2]}',
        '{:process 1, :type :ok, :f :cas, :key "x", :value [1 2]}',
        '{:process 2, :type :invoke, :f :get, :key "x", :value nil}',
        '{:process 2, :type :ok, :f :get, :key "x", :value 1}',
      ].join('\n'),
    );
    expect(events[2]).toMatchObject({ key: 'x', value: [1, 2], time: 2 });
    const result = checkHistory(events, { model: 'kv' });
    expect(result.verdict).toBe('not-linearizable');
    expect(result.violation!.key).toBe('x');
  });

  it('says what is wrong with broken EDN', () => {
    expect(() => parseEdn('{:process 0, :type :invoke, :f :read')).toThrow(/line 1: EDN: missing "}"/);
    expect(() => parseEdn('{:process 0, :type :begin, :f :read}')).toThrow(/:type must be :invoke/);
    expect(() => parseEdn('[1 2]')).toThrow(/expected an EDN map/);
    expect(() => parseEdn('{:process 0 :type}')).toThrow(/even number of forms/);
  });
});

describe("Jepsen's independent keys", () => {
  it('splits [key value] tuples into keys', () => {
    const events = splitIndependentKeys(
      parseEdn(
        [
          '{:process 0, :type :invoke, :f :write, :value [1 3]}',
          '{:process 0, :type :ok, :f :write, :value [1 3]}',
          '{:process 1, :type :invoke, :f :cas, :value [2 [nil 4]]}',
          '{:process 1, :type :ok, :f :cas, :value [2 [nil 4]]}',
          '{:process 2, :type :invoke, :f :read, :value [1 nil]}',
          '{:process 2, :type :ok, :f :read, :value [1 4]}',
        ].join('\n'),
      ),
    );
    expect(events.map((e) => [e.key, e.value])).toEqual([
      ['1', 3],
      ['1', 3],
      ['2', [null, 4]],
      ['2', [null, 4]],
      ['1', null],
      ['1', 4],
    ]);
    const result = checkHistory(events, { model: 'register' });
    expect(result.verdict).toBe('not-linearizable'); // key 1 read 4, which only key 2 ever held
    expect(result.violation!.key).toBe('1');
  });

  it('refuses a value that is not a tuple', () => {
    expect(() => splitIndependentKeys(parseEdn('{:process 0, :type :invoke, :f :read, :value nil}'))).toThrow(/\[key value\] tuple/);
  });
});

describe('jepsen log', () => {
  it('reads tab- and space-separated lines and skips other loggers', () => {
    const text = [
      '2017-03-01 10:00:00,000{GMT}\tINFO\t[jepsen worker 0] jepsen.core - Worker 0 starting',
      'INFO  jepsen.util - 0\t:invoke\t:write\t4',
      'INFO  jepsen.util - :nemesis\t:info\t:start\tnil',
      'INFO  jepsen.util - 1   :invoke :cas    [4 0]',
      'INFO  jepsen.util - 0\t:ok\t:write\t4',
      'INFO  jepsen.util - 1   :info   :cas    :timed-out',
      'INFO  jepsen.util - 2\t:invoke\t:read\tnil',
      'INFO  jepsen.util - 2\t:ok\t:read\t0',
    ].join('\n');
    const parsed = parseHistory(text);
    expect(parsed.format).toBe('jepsen-log');
    expect(parsed.events.map((e) => [e.process, e.type, e.f, e.value])).toEqual([
      [0, 'invoke', 'write', 4],
      [1, 'invoke', 'cas', [4, 0]],
      [0, 'ok', 'write', 4],
      [1, 'info', 'cas', ':timed-out'],
      [2, 'invoke', 'read', null],
      [2, 'ok', 'read', 0],
    ]);
    expect(parsed.nemesis).toHaveLength(1);
    // The timed-out cas must have happened for the read to see 0.
    expect(checkHistory(parsed.events, { model: 'register' }).verdict).toBe('linearizable');
  });

  it('refuses a log without operation lines', () => {
    expect(() => parseJepsenLog('INFO jepsen.util - hello')).toThrow(/no jepsen.util operation lines/);
  });
});

describe('format detection', () => {
  it('tells the formats apart from the first line', () => {
    expect(detectFormat('{"process":0}')).toBe('jsonl');
    expect(detectFormat('{:process 0}')).toBe('edn');
    expect(detectFormat('INFO  jepsen.util - 0\t:invoke\t:read\tnil')).toBe('jepsen-log');
    expect(detectFormat('\n\n')).toBe('jsonl');
  });

  it('refuses anything else with a clear error', () => {
    expect(() => parseHistory('hello world')).toThrow(HistoryError);
    expect(() => parseHistory('hello world')).toThrow(/not a history this checker reads/);
  });
});
