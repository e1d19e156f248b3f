import type { Clock } from './clock';

/** A cached Google access token. */
export interface CachedToken {
  readonly accessToken: string;
  /** Milliseconds since the epoch. */
  readonly expiresAt: number;
  /** Sorted; shared between the tokens of one scope set, so never to be modified. */
  readonly scopes: readonly string[];
}

/** A scope set's one spelling: its key and its frozen, sorted list. */
interface ScopeSet {
  readonly key: string;
  readonly scopes: readonly string[];
}

/** What expiries are counted from: see {@link Entry}. */
const EXPIRY_ORIGIN_MS = Date.now();

/**
 * A cached token as held: three fields. The expiry is kept in milliseconds
 * from {@link EXPIRY_ORIGIN_MS}, a small integer V8 stores in the object
 * itself, where a full epoch time would take a separate 16-byte number (for
 * about 24 days of uptime; later expiries are boxed again, which costs
 * memory, not correctness).
 */
class Entry implements CachedToken {
  private readonly expiry: number;

  constructor(
    readonly accessToken: string,
    expiresAt: number,
    readonly set: ScopeSet,
  ) {
    this.expiry = expiresAt - EXPIRY_ORIGIN_MS;
  }

  get expiresAt(): number {
    return this.expiry + EXPIRY_ORIGIN_MS;
  }

  get scopes(): readonly string[] {
    return this.set.scopes;
  }
}

/** Most distinct scope sets whose spelling is shared between entries. */
const MAX_SHARED_SCOPE_SETS = 1000;

/**
 * In-process cache of access tokens, per user and per scope set. Bounded by
 * users: when full, the user touched least recently goes. Entries past
 * expiry are dropped on read.
 *
 * Sized for 100,000 users and more: a user with tokens for one scope set
 * costs one map entry and one three-field object, each further scope set one
 * more object and an array slot (a Map per user cost 200 B more), and the
 * scope lists and keys of a scope set are held once for all users.
 */
export class AccessTokenCache {
  /**
   * user ID -> its one entry, or its entries (two or more, one per scope
   * key, looked up in turn: a user holds few); Map order doubles as recency
   * order.
   */
  private readonly users = new Map<string, Entry | Entry[]>();
  /** scope key -> the frozen scope list and key every entry of that set shares. */
  private readonly scopeSets = new Map<string, ScopeSet>();

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
    return scopes.length === 1 ? (scopes[0] as string) : scopes.join(' ');
  }

  /** The token of `userId` for `scopeKey` if it stays valid for at least `minTtlMs`. */
  get(userId: string, scopeKey: string, minTtlMs: number): CachedToken | undefined {
    const held = this.users.get(userId);
    if (held === undefined) return undefined;
    const at = Array.isArray(held) ? indexOf(held, scopeKey) : held.set.key === scopeKey ? 0 : -1;
    if (at < 0) return undefined;
    const entry = Array.isArray(held) ? (held[at] as Entry) : held;
    const remaining = entry.expiresAt - this.clock.now();
    if (remaining <= 0) {
      this.drop(userId, held, scopeKey);
      return undefined;
    }
    return remaining >= minTtlMs ? entry : undefined;
  }

  /** Stores a token, evicting the least recently stored user when full. */
  set(userId: string, scopeKey: string, token: CachedToken): void {
    const entry = new Entry(token.accessToken, token.expiresAt, this.sharedScopeSet(scopeKey, token.scopes));
    const held = this.users.get(userId);
    if (held === undefined) {
      if (this.users.size >= this.maxUsers) {
        const oldest = this.users.keys().next();
        if (!oldest.done) this.users.delete(oldest.value);
      }
      this.users.set(userId, entry);
      return;
    }
    this.users.delete(userId);
    if (Array.isArray(held)) {
      const at = indexOf(held, entry.set.key);
      if (at >= 0) held[at] = entry;
      else held.push(entry);
      this.users.set(userId, held);
    } else {
      this.users.set(userId, held.set.key === entry.set.key ? entry : [held, entry]);
    }
  }

  /** Drops every token of `userId` (its grant died or was replaced). */
  deleteUser(userId: string): void {
    this.users.delete(userId);
  }

  /** Number of users with cached tokens. */
  get size(): number {
    return this.users.size;
  }

  private drop(userId: string, held: Entry | Entry[], scopeKey: string): void {
    if (!Array.isArray(held)) {
      this.users.delete(userId);
      return;
    }
    const rest = held.filter((e) => e.set.key !== scopeKey);
    // Map order is recency order: the user keeps its place.
    this.users.set(userId, rest.length === 1 ? (rest[0] as Entry) : rest);
  }

  /**
   * The shared spelling of a scope set. Past the bound (many distinct sets
   * would take a caller without a policy) entries keep their own copies.
   */
  private sharedScopeSet(scopeKey: string, scopes: readonly string[]): ScopeSet {
    const known = this.scopeSets.get(scopeKey);
    if (known) return known;
    const set = { key: scopeKey, scopes: Object.freeze([...scopes]) };
    if (this.scopeSets.size < MAX_SHARED_SCOPE_SETS) this.scopeSets.set(scopeKey, set);
    return set;
  }
}

/** Where the entry for `scopeKey` sits in a user's entries, or -1. */
function indexOf(entries: readonly Entry[], scopeKey: string): number {
  for (let i = 0; i < entries.length; i += 1) {
    if ((entries[i] as Entry).set.key === scopeKey) return i;
  }
  return -1;
}
