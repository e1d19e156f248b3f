import { createPublicKey, type KeyObject } from 'node:crypto';
import type { Clock } from '../../domain/clock';

/** Tunables of {@link RiscSigningKeys}. */
export interface RiscSigningKeysOptions {
  /** The JWK set URL (Google's RISC `jwks_uri`). */
  url: string;
  /** Per-fetch timeout. */
  timeoutMs: number;
  /** How long keys are kept when the response names no `max-age`. */
  defaultMaxAgeMs: number;
  /** Longest a `max-age` is honoured. */
  maxMaxAgeMs: number;
  /** An unknown `kid` refetches the set at most this often. */
  minRefetchIntervalMs: number;
  clock: Clock;
  /** The HTTP client (global fetch by default). */
  fetch?: typeof fetch;
}

/** The key set could not be read: the sender should retry later (503), the token is not at fault. */
export class RiscKeysUnavailableError extends Error {
  override readonly name = 'RiscKeysUnavailableError';
}

/**
 * Google's RISC signing keys, from a JWK set: cached for the response's
 * `cache-control: max-age` (bounded), refetched early when a token names a
 * key the cache lacks (Google rotates keys), at most once per
 * `minRefetchIntervalMs`, so forged key IDs cannot make us hammer Google.
 * Concurrent lookups share one fetch. Only RSA signing keys are loaded.
 */
export class RiscSigningKeys {
  private keys = new Map<string, KeyObject>();
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private expiresAt = Number.NEGATIVE_INFINITY;
  private inFlight: Promise<void> | undefined;

  constructor(private readonly options: RiscSigningKeysOptions) {
    if (!/^https?:\/\//.test(options.url)) throw new RangeError('RiscSigningKeys: url must be an http(s) URL');
  }

  /** The public key named `kid`, or undefined when the (fresh) set has none. Throws RiscKeysUnavailableError. */
  async key(kid: string): Promise<KeyObject | undefined> {
    const now = this.options.clock.now();
    if (now >= this.expiresAt) {
      await this.refresh(now);
    } else if (!this.keys.has(kid) && now - this.fetchedAt >= this.options.minRefetchIntervalMs) {
      await this.refresh(now);
    }
    return this.keys.get(kid);
  }

  private async refresh(now: number): Promise<void> {
    this.inFlight ??= this.load(now).finally(() => {
      this.inFlight = undefined;
    });
    try {
      await this.inFlight;
    } catch (err: unknown) {
      // Keys that expired a moment ago still beat answering 503 for every
      // event while Google's endpoint is down; with none at all we must.
      if (this.keys.size === 0) throw err;
    }
  }

  private async load(now: number): Promise<void> {
    const doFetch = this.options.fetch ?? fetch;
    let response: Response;
    try {
      response = await doFetch(this.options.url, { signal: AbortSignal.timeout(this.options.timeoutMs), headers: { accept: 'application/json' } });
    } catch (err: unknown) {
      throw new RiscKeysUnavailableError(`the RISC key set could not be fetched (${err instanceof Error ? err.name : 'error'})`);
    }
    if (!response.ok) throw new RiscKeysUnavailableError(`the RISC key set answered HTTP ${response.status}`);
    let body: unknown;
    try {
      body = await response.json();
    } catch {
      throw new RiscKeysUnavailableError('the RISC key set is not JSON');
    }
    const list = (body as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(list)) throw new RiscKeysUnavailableError('the RISC key set has no keys array');
    const keys = new Map<string, KeyObject>();
    for (const jwk of list as unknown[]) {
      const loaded = rsaSigningKey(jwk);
      if (loaded) keys.set(loaded.kid, loaded.key);
    }
    this.keys = keys;
    this.fetchedAt = now;
    this.expiresAt = now + this.maxAge(response.headers.get('cache-control'));
  }

  private maxAge(cacheControl: string | null): number {
    const seconds = /(?:^|[\s,])max-age=(\d+)/i.exec(cacheControl ?? '')?.[1];
    if (seconds === undefined) return this.options.defaultMaxAgeMs;
    return Math.min(Number(seconds) * 1000, this.options.maxMaxAgeMs);
  }
}

/** An RS256 verification key from one JWK, or undefined for anything else. */
function rsaSigningKey(jwk: unknown): { kid: string; key: KeyObject } | undefined {
  if (typeof jwk !== 'object' || jwk === null) return undefined;
  const { kty, kid, n, e, alg, use } = jwk as Record<string, unknown>;
  if (kty !== 'RSA' || typeof kid !== 'string' || kid === '' || typeof n !== 'string' || typeof e !== 'string') return undefined;
  if ((alg !== undefined && alg !== 'RS256') || (use !== undefined && use !== 'sig')) return undefined;
  try {
    return { kid, key: createPublicKey({ key: { kty: 'RSA', n, e }, format: 'jwk' }) };
  } catch {
    return undefined;
  }
}
