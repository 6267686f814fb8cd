// Hand-written histories with known verdicts, for each model: the anomalies a checker exists to catch, and the
// overlaps and unknown outcomes it must not mistake for them.
import { describe, expect, it } from 'vitest';
import { checkHistory, HistoryError, type CheckResult, type Model } from './index.js';
import { history } from './testing.js';

function check(text: string, model: Model = 'register'): CheckResult {
  return checkHistory(history(text, { keyed: model === 'kv' }), { model });
}

function verdictOf(text: string, model: Model = 'register'): string {
  return check(text, model).verdict;
}

describe('register model', () => {
  it('a read sees the last completed write', () => {
    expect(verdictOf(`
      0 invoke write 1
      0 ok write 1
      1 invoke read
      1 ok read 1`)).toBe('linearizable');
  });

  it('a read of an empty register returns nil', () => {
    expect(verdictOf(`
      0 invoke read
      0 ok read null`)).toBe('linearizable');
  });

  it('catches a stale read, and says which read and after what', () => {
    const result = check(`
      0 invoke write 1
      0 ok write 1
      1 invoke write 2
      1 ok write 2
      2 invoke read
      2 ok read 1`);
    expect(result.verdict).toBe('not-linearizable');
    const v = result.violation!;
    expect(v.key).toBeNull();
    expect(v.blocking.f).toBe('read');
    expect(v.blocking.output).toBe(1);
    expect(v.prefix.map((op) => op.input)).toEqual([1, 2]);
    expect(v.state).toBe('2');
    expect(v.time).toBe(5);
  });

  it('catches a lost write: acknowledged, then never seen', () => {
    expect(verdictOf(`
      0 invoke write 1
      0 ok write 1
      1 invoke read
      1 ok read null`)).toBe('not-linearizable');
  });

  it('catches a read of a value nobody wrote', () => {
    expect(verdictOf(`
      0 invoke write 1
      1 invoke read
      0 ok write 1
      1 ok read 7`)).toBe('not-linearizable');
  });

  it('orders concurrent writes the one way the later reads allow', () => {
    const result = check(`
      0 invoke write 1
      1 invoke write 2
      0 ok write 1
      1 ok write 2
      2 invoke read
      2 ok read 1`);
    expect(result.verdict).toBe('linearizable');
    // write 2 must come first even though write 1 was invoked first.
    const order = result.perKey[0]!.linearization!.map((id) => result.history[id]!);
    expect(order.map((op) => `${op.f}${op.input ?? op.output}`)).toEqual(['write2', 'write1', 'read1']);
  });

  it('rejects concurrent writes whose later reads need both orders', () => {
    expect(verdictOf(`
      0 invoke write 1
      1 invoke write 2
      0 ok write 1
      1 ok write 2
      2 invoke read
      2 ok read 1
      2 invoke read
      2 ok read 2`)).toBe('not-linearizable');
  });

  it('lets a read overlap a write and see either value', () => {
    for (const seen of ['1', '2']) {
      expect(verdictOf(`
        0 invoke write 1
        0 ok write 1
        0 invoke write 2
        1 invoke read
        1 ok read ${seen}
        0 ok write 2`)).toBe('linearizable');
    }
  });

  it('catches two reads that disagree on the order of one write (new then old)', () => {
    expect(verdictOf(`
      0 invoke write 1
      0 ok write 1
      0 invoke write 2
      1 invoke read
      1 ok read 2
      2 invoke read
      2 ok read 1
      0 ok write 2`)).toBe('not-linearizable');
  });

  it('catches a cas anomaly: two swaps from the same value both succeed', () => {
    expect(verdictOf(`
      0 invoke write 1
      0 ok write 1
      1 invoke cas [1,2]
      2 invoke cas [1,3]
      1 ok cas [1,2]
      2 ok cas [1,3]`)).toBe('not-linearizable');
  });

  it('accepts chained swaps in the only order that works', () => {
    expect(verdictOf(`
      0 invoke write 1
      0 ok write 1
      1 invoke cas [2,3]
      2 invoke cas [1,2]
      1 ok cas [2,3]
      2 ok cas [1,2]
      3 invoke read
      3 ok read 3`)).toBe('linearizable');
  });

  it('catches a cas whose result a later read contradicts', () => {
    expect(verdictOf(`
      0 invoke write 1
      0 ok write 1
      1 invoke cas [1,2]
      1 ok cas [1,2]
      2 invoke read
      2 ok read 1`)).toBe('not-linearizable');
  });

  it('checks a cas that reports a mismatch (ok with false) against the state', () => {
    const prefix = `
      0 invoke write 1
      0 ok write 1`;
    expect(verdictOf(`${prefix}
      1 invoke cas [1,2]
      1 ok cas false`)).toBe('not-linearizable');
    expect(verdictOf(`${prefix}
      1 invoke cas [5,2]
      1 ok cas false
      2 invoke read
      2 ok read 1`)).toBe('linearizable');
  });

  it('drops failed operations: they certainly did not happen', () => {
    expect(verdictOf(`
      0 invoke write 1
      0 ok write 1
      1 invoke write 2
      1 fail write 2
      2 invoke read
      2 ok read 2`)).toBe('not-linearizable');
  });

  describe('indeterminate operations', () => {
    it('assumes an info write happened when a later read needs it', () => {
      expect(verdictOf(`
        0 invoke write 1
        0 ok write 1
        1 invoke write 2
        1 info write "timed-out"
        2 invoke read
        2 ok read 2`)).toBe('linearizable');
    });

    it('assumes an info write never happened when the reads need that', () => {
      expect(verdictOf(`
        0 invoke write 1
        0 ok write 1
        1 invoke write 2
        1 info write "timed-out"
        2 invoke read
        2 ok read 1
        2 invoke read
        2 ok read 1`)).toBe('linearizable');
    });

    it('may take effect late, long after the client gave up', () => {
      expect(verdictOf(`
        1 invoke write 2
        1 info write "timed-out"
        2 invoke read
        2 ok read null
        3 invoke read
        3 ok read 2`)).toBe('linearizable');
    });

    it('cannot take effect before its invocation', () => {
      expect(verdictOf(`
        2 invoke read
        2 ok read 2
        1 invoke write 2
        1 info write "timed-out"`)).toBe('not-linearizable');
    });

    it('takes effect at most once', () => {
      expect(verdictOf(`
        0 invoke write 1
        0 ok write 1
        1 invoke write 2
        1 info write "timed-out"
        2 invoke read
        2 ok read 2
        0 invoke write 1
        0 ok write 1
        2 invoke read
        2 ok read 2`)).toBe('not-linearizable');
    });

    it('treats an invoke that never completed as indeterminate', () => {
      expect(verdictOf(`
        0 invoke write 1
        0 ok write 1
        1 invoke write 2
        2 invoke read
        2 ok read 2`)).toBe('linearizable');
    });

    it('lets an info cas take effect only if its compare would match', () => {
      const base = `
        0 invoke write 1
        0 ok write 1
        1 invoke cas [1,3]
        1 info cas "timed-out"`;
      expect(verdictOf(`${base}
        2 invoke read
        2 ok read 3`)).toBe('linearizable');
      expect(verdictOf(`${base}
        0 invoke write 5
        0 ok write 5
        2 invoke read
        2 ok read 3`)).toBe('not-linearizable'); // after write 5 its compare (1) can never match again
    });
  });
});

describe('kv model', () => {
  it('checks each key on its own and names the key that fails', () => {
    const result = check(`
      0 invoke put x 1
      0 ok put x 1
      1 invoke put y 2
      1 ok put y 2
      2 invoke get y
      2 ok get y 2
      2 invoke get x
      2 ok get x 2`, 'kv');
    expect(result.verdict).toBe('not-linearizable');
    expect(result.keys).toBe(2);
    expect(result.violation!.key).toBe('x');
    expect(result.perKey.map((k) => [k.key, k.verdict])).toEqual([
      ['x', 'not-linearizable'],
      ['y', 'linearizable'],
    ]);
  });

  it('orders concurrent appends the way the reads saw them, and only that way', () => {
    const appends = `
      0 invoke append x "a"
      1 invoke append x "b"
      0 ok append x "a"
      1 ok append x "b"
      2 invoke get x
      2 ok get x "ba"`;
    expect(verdictOf(appends, 'kv')).toBe('linearizable');
    expect(verdictOf(`${appends}
      2 invoke get x
      2 ok get x "ab"`, 'kv')).toBe('not-linearizable');
  });

  it('deletes a key and swaps on it', () => {
    expect(verdictOf(`
      0 invoke put k 1
      0 ok put k 1
      0 invoke delete k
      0 ok delete k
      1 invoke get k
      1 ok get k null
      1 invoke cas k [null,4]
      1 ok cas k [null,4]
      2 invoke get k
      2 ok get k 4`, 'kv')).toBe('linearizable');
  });

  it('catches a lost append', () => {
    expect(verdictOf(`
      0 invoke append x "a"
      0 ok append x "a"
      1 invoke append x "b"
      1 ok append x "b"
      2 invoke get x
      2 ok get x "b"`, 'kv')).toBe('not-linearizable');
  });
});

describe('malformed input', () => {
  it('names an operation the model does not know', () => {
    expect(() => check(`
      0 invoke read x
      0 ok read x 1`, 'kv')).toThrow(/the kv model has no operation "read"/);
  });

  it('refuses a second invoke while one is outstanding', () => {
    expect(() => check(`
      0 invoke write 1
      0 invoke write 2`)).toThrow(HistoryError);
  });

  it('refuses a completion without an invoke, and one that names another operation', () => {
    expect(() => check(`0 ok write 1`)).toThrow(/without an invoke/);
    expect(() => check(`
      0 invoke write 1
      0 ok read 1`)).toThrow(/completes read but invoked write/);
  });

  it('refuses a cas without [expected, new]', () => {
    expect(() => check(`
      0 invoke cas 3
      0 ok cas 3`)).toThrow(/cas takes \[expected, new\]/);
  });

  it('refuses an unknown model', () => {
    expect(() => checkHistory([], { model: 'queue' as Model })).toThrow(/unknown model/);
  });
});

describe('counting', () => {
  it('reports operations, keys and a linearization order', () => {
    const result = check(`
      0 invoke put a 1
      1 invoke put b 1
      0 ok put a 1
      1 fail put b 1`, 'kv');
    expect(result).toMatchObject({ verdict: 'linearizable', model: 'kv', operations: 2, keys: 2 });
    expect(result.perKey.map((k) => k.operations)).toEqual([1, 0]); // the failed put is left out of the search
  });

  it('an empty history is linearizable', () => {
    expect(checkHistory([], { model: 'register' })).toMatchObject({ verdict: 'linearizable', operations: 0, keys: 0 });
  });
});
