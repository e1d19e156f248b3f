import { expect } from 'chai';
import { AccessTokenCache, type CachedToken } from '../src/domain/access-token-cache';

describe('AccessTokenCache', () => {
  let now: number;
  const clock = { now: () => now };
  const HOUR = 3_600_000;
  const token = (name: string, scopes: string[], ttlMs = HOUR): CachedToken => ({ accessToken: name, expiresAt: now + ttlMs, scopes });
  const held = (cache: AccessTokenCache, userId: string, scopeKey: string) => {
    const found = cache.get(userId, scopeKey, 0);
    return found && { accessToken: found.accessToken, expiresAt: found.expiresAt, scopes: [...found.scopes] };
  };

  beforeEach(() => {
    now = Date.UTC(2026, 11, 5, 22, 0, 0, 123);
  });

  it('holds a token per scope set for one user, each with its own expiry and scopes, and replaces one in place', () => {
    const cache = new AccessTokenCache(clock, 10);
    cache.set('1', '', token('whole', ['email', 'openid']));
    cache.set('1', 'drive', token('drive', ['drive'], HOUR / 2));
    cache.set('1', 'drive gmail', token('two', ['drive', 'gmail']));
    expect(held(cache, '1', '')).to.deep.equal({ accessToken: 'whole', expiresAt: now + HOUR, scopes: ['email', 'openid'] });
    expect(held(cache, '1', 'drive')).to.deep.equal({ accessToken: 'drive', expiresAt: now + HOUR / 2, scopes: ['drive'] });
    expect(held(cache, '1', 'drive gmail')?.accessToken).to.equal('two');
    expect(held(cache, '1', 'gmail')).to.equal(undefined);
    cache.set('1', 'drive', token('drive again', ['drive']));
    expect(held(cache, '1', 'drive')?.accessToken).to.equal('drive again');
    expect(held(cache, '1', '')?.accessToken, 'the others stay').to.equal('whole');
    expect(cache.size).to.equal(1);
  });

  it('answers only tokens that last the asked time, and forgets expired ones without losing the user\'s others', () => {
    const cache = new AccessTokenCache(clock, 10);
    cache.set('1', '', token('whole', ['openid'], HOUR));
    cache.set('1', 'drive', token('drive', ['drive'], 60_000));
    expect(cache.get('1', 'drive', 59_000)?.accessToken).to.equal('drive');
    expect(cache.get('1', 'drive', 61_000), 'too short for the caller').to.equal(undefined);
    now += 60_000;
    expect(cache.get('1', 'drive', 0), 'expired').to.equal(undefined);
    expect(held(cache, '1', '')?.accessToken).to.equal('whole');
    now += HOUR;
    expect(cache.get('1', '', 0)).to.equal(undefined);
    expect(cache.size, 'a user with nothing left is gone').to.equal(0);
  });

  it('evicts the user stored least recently when full, and forgets a user on purpose', () => {
    const cache = new AccessTokenCache(clock, 2);
    cache.set('1', '', token('a', []));
    cache.set('2', '', token('b', []));
    cache.set('1', 'drive', token('c', ['drive']));
    cache.set('3', '', token('d', []));
    expect(held(cache, '2', ''), 'user 2 was stored least recently').to.equal(undefined);
    expect(held(cache, '1', 'drive')?.accessToken).to.equal('c');
    expect(held(cache, '3', '')?.accessToken).to.equal('d');
    cache.deleteUser('1');
    expect(held(cache, '1', '')).to.equal(undefined);
    expect(held(cache, '1', 'drive')).to.equal(undefined);
    expect(cache.size).to.equal(1);
  });

  it('keeps expiries to the millisecond, far from now too', () => {
    const cache = new AccessTokenCache(clock, 10);
    const far = Date.UTC(2099, 0, 1, 0, 0, 0, 7);
    cache.set('1', '', { accessToken: 't', expiresAt: far, scopes: [] });
    expect(cache.get('1', '', 0)?.expiresAt).to.equal(far);
  });
});
