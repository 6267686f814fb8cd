import { describe, expect, it } from 'vitest';
import { freshMemberId, memberIdFor, samePeerUrls } from './ids.js';

const URLS = ['http://10.0.0.7:2380'];

describe('member ids', () => {
  it('a founding member\'s id comes from its peer URLs and the token alone, in any order', () => {
    expect(memberIdFor(['http://a:1', 'http://b:2'], 't')).toBe(memberIdFor(['http://b:2', 'http://a:1'], 't'));
    expect(memberIdFor(URLS, 't')).not.toBe(memberIdFor(URLS, 'u'));
  });

  it('an added member gets a fresh id each time, never a taken one, within the Raft core\'s 52 bits', () => {
    const a = freshMemberId(URLS, 't', new Set());
    const b = freshMemberId(URLS, 't', new Set());
    expect(a).not.toBe(b);
    expect(a).not.toBe(memberIdFor(URLS, 't'));
    for (const id of [a, b]) expect(Number.isSafeInteger(id) && id > 0 && id < 2 ** 52).toBe(true);
    // The same salt gives the same id: a taken one makes it draw again.
    const salts = ['s1', 's1', 's2'];
    const first = freshMemberId(URLS, 't', new Set(), () => 's1');
    expect(freshMemberId(URLS, 't', new Set([first]), () => salts.shift()!)).toBe(freshMemberId(URLS, 't', new Set(), () => 's2'));
    expect(salts).toEqual([]);
  });

  it('peer URLs are the same set whatever their order', () => {
    expect(samePeerUrls(['http://a:1', 'http://b:2'], ['http://b:2', 'http://a:1'])).toBe(true);
    expect(samePeerUrls(['http://a:1'], ['http://a:1', 'http://b:2'])).toBe(false);
    expect(samePeerUrls(['http://a:1'], ['http://a:2'])).toBe(false);
  });
});
