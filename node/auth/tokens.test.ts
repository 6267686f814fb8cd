import { describe, expect, it } from 'vitest';
import { LOGIN_DELAY_BASE_MS, LOGIN_DELAY_MAX_MS, LOGIN_FAILURE_MEMORY_MS, LoginThrottle, TokenStore, tokenIndex } from './tokens.js';

describe('TokenStore', () => {
  it('expires a token after its TTL unless used, each use renewing it', () => {
    let now = 0;
    const tokens = new TokenStore(1_000, () => now);
    tokens.add('t.1', 'alice');
    now = 900;
    expect(tokens.use('t.1')).toBe('alice');
    now = 1_800; // 900 ms after the renewal
    expect(tokens.use('t.1')).toBe('alice');
    now = 2_800; // exactly one TTL after the last use
    expect(tokens.use('t.1')).toBeUndefined();
    expect(tokens.size).toBe(0);
  });

  it('forgets every token of a deleted user, and all tokens when auth is disabled', () => {
    const tokens = new TokenStore(1_000, () => 0);
    tokens.add('a.1', 'alice');
    tokens.add('a.2', 'alice');
    tokens.add('b.3', 'bob');
    tokens.invalidateUser('alice');
    expect([tokens.use('a.1'), tokens.use('a.2'), tokens.use('b.3')]).toEqual([undefined, undefined, 'bob']);
    tokens.clear();
    expect(tokens.use('b.3')).toBeUndefined();
  });
});

describe('tokenIndex', () => {
  it('reads the log index after the last dot, and nothing from a token that names none', () => {
    expect(tokenIndex('abcdefghijklmnop.42')).toBe(42);
    expect(tokenIndex('a.b.7')).toBe(7);
    for (const t of ['abcdefghijklmnop', 'x.', 'x.-1', 'x.4e5', 'x.1234567890123456', 'x. 5']) expect(tokenIndex(t)).toBeUndefined();
  });
});

describe('LoginThrottle', () => {
  it('doubles the delay per failure for the user and the peer, up to the limit, and forgets old failures', () => {
    let now = 0;
    const t = new LoginThrottle(() => now);
    expect(t.delayMs('alice', '10.0.0.1')).toBe(0);
    t.failed('alice', '10.0.0.1');
    expect(t.delayMs('alice', '10.0.0.9')).toBe(LOGIN_DELAY_BASE_MS); // same user, other address
    expect(t.delayMs('bob', '10.0.0.1')).toBe(LOGIN_DELAY_BASE_MS); // same address, other user
    expect(t.delayMs('bob', '10.0.0.9')).toBe(0);
    t.failed('alice', '10.0.0.1');
    expect(t.delayMs('alice', '10.0.0.1')).toBe(2 * LOGIN_DELAY_BASE_MS);
    for (let i = 0; i < 30; i++) t.failed('alice', '10.0.0.1');
    expect(t.delayMs('alice', '10.0.0.1')).toBe(LOGIN_DELAY_MAX_MS);
    t.succeeded('alice');
    expect(t.delayMs('alice', '10.0.0.9')).toBe(0); // the user is cleared...
    expect(t.delayMs('alice', '10.0.0.1')).toBe(LOGIN_DELAY_MAX_MS); // ...the guessing address is not
    now += LOGIN_FAILURE_MEMORY_MS + 1;
    expect(t.delayMs('alice', '10.0.0.1')).toBe(0);
  });
});
