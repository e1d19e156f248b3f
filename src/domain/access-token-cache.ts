import type { Clock } from './clock';

/** A cached Google access token. */
export interface CachedToken {
  accessToken: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  scopes: string[];
}

/**
 * In-process cache of access tokens by user and scope set. Bounded: when
 * full, the oldest entry goes. Entries past expiry are dropped on read.
 */
export class AccessTokenCache {
  private readonly entries = new Map<string, CachedToken>();

  /**
   * @param clock time source
   * @param maxEntries bound on entries (a few hundred bytes each)
   */
  constructor(
    private readonly clock: Clock,
    private readonly maxEntries: number,
  ) {}

  /** The cache key for a user and a normalized scope list (empty = the whole grant). */
  static key(userId: string, scopes: readonly string[]): string {
    return scopes.length === 0 ? userId : `${userId} ${scopes.join(' ')}`;
  }

  /** The token under `key` if it stays valid for at least `minTtlMs`. */
  get(key: string, minTtlMs: number): CachedToken | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    const remaining = entry.expiresAt - this.clock.now();
    if (remaining <= 0) {
      this.entries.delete(key);
      return undefined;
    }
    return remaining >= minTtlMs ? entry : undefined;
  }

  /** Stores a token, evicting the oldest entry when full. */
  set(key: string, token: CachedToken): void {
    this.entries.delete(key);
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(key, token);
  }

  /** Drops every token of `userId` (its grant died or changed). */
  deleteUser(userId: string): void {
    for (const key of this.entries.keys()) {
      if (key === userId || key.startsWith(`${userId} `)) this.entries.delete(key);
    }
  }

  /** Number of cached tokens. */
  get size(): number {
    return this.entries.size;
  }
}
