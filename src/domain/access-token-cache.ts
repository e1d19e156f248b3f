import type { Clock } from './clock';

/** A cached Google access token. */
export interface CachedToken {
  accessToken: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  scopes: string[];
}

/**
 * In-process cache of access tokens, per user and per scope set. Bounded by
 * users: when full, the user touched least recently goes. Entries past
 * expiry are dropped on read.
 */
export class AccessTokenCache {
  /** user ID -> scope key -> token; Map order doubles as recency order. */
  private readonly users = new Map<string, Map<string, CachedToken>>();

  /**
   * @param clock time source
   * @param maxUsers bound on users held (a few hundred bytes each)
   */
  constructor(
    private readonly clock: Clock,
    private readonly maxUsers: number,
  ) {}

  /** The key of a normalized scope list within a user's entries ('' = the whole grant). */
  static scopeKey(scopes: readonly string[]): string {
    return scopes.join(' ');
  }

  /** The token of `userId` for `scopeKey` if it stays valid for at least `minTtlMs`. */
  get(userId: string, scopeKey: string, minTtlMs: number): CachedToken | undefined {
    const entries = this.users.get(userId);
    const entry = entries?.get(scopeKey);
    if (!entries || !entry) return undefined;
    const remaining = entry.expiresAt - this.clock.now();
    if (remaining <= 0) {
      entries.delete(scopeKey);
      if (entries.size === 0) this.users.delete(userId);
      return undefined;
    }
    return remaining >= minTtlMs ? entry : undefined;
  }

  /** Stores a token, evicting the least recently stored user when full. */
  set(userId: string, scopeKey: string, token: CachedToken): void {
    let entries = this.users.get(userId);
    if (entries) {
      this.users.delete(userId);
    } else {
      entries = new Map();
      if (this.users.size >= this.maxUsers) {
        const oldest = this.users.keys().next();
        if (!oldest.done) this.users.delete(oldest.value);
      }
    }
    entries.set(scopeKey, token);
    this.users.set(userId, entries);
  }

  /** Drops every token of `userId` (its grant died or was replaced). */
  deleteUser(userId: string): void {
    this.users.delete(userId);
  }

  /** Number of users with cached tokens. */
  get size(): number {
    return this.users.size;
  }
}
