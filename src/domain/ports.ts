import type { SealedBox } from '../crypto/sealed-box';
import type { Deadline } from './deadline';
import type { GrantRecord } from './grant';

/**
 * Decides the next state of one grant from the current one (undefined when
 * none is stored). Returning undefined leaves the store untouched. It may run
 * more than once (store transactions retry), so it must not do I/O.
 */
export type GrantMutation = (current: GrantRecord | undefined) => GrantRecord | undefined;

/** What {@link GrantStore.update} did: the grant before and after, and whether it recorded the exchange's completion. */
export interface GrantUpdate {
  before: GrantRecord | undefined;
  after: GrantRecord | undefined;
  completed: boolean;
}

/** Where grants live (Firestore in production). Failures throw BrokerError STORE_UNAVAILABLE. */
export interface GrantStore {
  /** The stored grant, or undefined. */
  get(userId: string): Promise<GrantRecord | undefined>;
  /**
   * Reads the grant and writes what `mutate` returns, atomically. Errors the
   * mutation throws propagate unchanged. Resolves with the state before and
   * after. With `completion`, a store that can writes the exchange's DONE
   * record (user `userId`, `created` when no grant was stored before) in the
   * same atomic write as the grant, and says so with `completed`; when
   * nothing is written, or the store cannot, `completed` is false and the
   * caller records it in the {@link ExchangeLedger} itself.
   */
  update(userId: string, mutate: GrantMutation, completion?: ExchangeCompletion): Promise<GrantUpdate>;
  /** Up to `limit` stored user IDs in ascending order, starting after `after` (from the start when undefined). */
  listUserIds(after: string | undefined, limit: number): Promise<string[]>;
  /**
   * Like {@link listUserIds}, with each grant as stored (one query for the
   * page, no read per grant); a document that no longer fits the schema
   * comes with its decoding error instead.
   */
  listGrants(after: string | undefined, limit: number): Promise<ListedGrant[]>;
  /** Deletes the user's grant; deleting an absent one succeeds. */
  delete(userId: string): Promise<void>;
  /**
   * IDs of the users whose stored `refreshTokenHash` equals `hash` (at most a
   * few): how a Cross-Account Protection token-revoked event finds its grant.
   */
  findByRefreshTokenHash(hash: string): Promise<string[]>;
}

/**
 * What every replica shares about one user's access token for one scope
 * set: the last token obtained (sealed like the refresh token) and the
 * lease of the replica refreshing it now, if any.
 */
export interface SharedTokenRecord {
  userId: string;
  /** The normalized scope list, space-separated ('' = the whole grant). */
  scopeKey: string;
  /** Who is refreshing, and until when (ms since the epoch) that claim holds. */
  lease?: { holder: string; until: number };
  token?: {
    sealed: SealedBox;
    /** Milliseconds since the epoch. */
    expiresAt: number;
    scopes: readonly string[];
    /** {@link grantVersion} of the grant the token was refreshed from. */
    grantVersion: string;
  };
}

/** Like {@link GrantMutation}, for a shared token record; pure, may run more than once. */
export type SharedTokenMutation = (current: SharedTokenRecord | undefined) => SharedTokenRecord | undefined;

/**
 * Where replicas share access tokens and refresh leases (Firestore in
 * production). Failures throw BrokerError STORE_UNAVAILABLE.
 */
export interface SharedTokenStore {
  get(userId: string, scopeKey: string): Promise<SharedTokenRecord | undefined>;
  /** Reads the record and writes what `mutate` returns, atomically (undefined: no write). */
  update(userId: string, scopeKey: string, mutate: SharedTokenMutation): Promise<{ before: SharedTokenRecord | undefined; after: SharedTokenRecord | undefined }>;
  /** Deletes every record of the user. */
  deleteUser(userId: string): Promise<void>;
}

/** A revocation whose telling Google is still to be done. */
export interface PendingRevocation {
  userId: string;
  /** The grant's refresh token, sealed as it was stored. */
  refreshToken: SealedBox;
  /** Failed attempts so far. */
  attempts: number;
}

/**
 * Users revoked through RevokeUser, shared by every replica: each replica
 * watches it to drop the user's cached tokens, and revocations Google did
 * not confirm wait here for the retry-revocations job.
 */
export interface RevocationLedger {
  /** Records that `userId` was revoked; with `pending`, Google still has to be told. */
  record(userId: string, pending?: SealedBox): Promise<void>;
  /**
   * Calls `onRevoked` for each revocation any replica records from now on
   * (typically within a second). Returns a function that stops watching.
   */
  watch(onRevoked: (userId: string) => void, onError: (err: unknown) => void): () => void;
  /**
   * Makes every replica's `watch` report `userId` without recording a
   * revocation: the grant stays stored (marked dead by a Cross-Account
   * Protection event) but no replica may keep serving its cached tokens.
   */
  announceDrop(userId: string): Promise<void>;
  /** Up to `limit` revocations still to be told to Google, after user `after`. */
  pending(after: string | undefined, limit: number): Promise<PendingRevocation[]>;
  /** Ends a pending revocation (Google confirmed), or counts a failed attempt. */
  settle(userId: string, done: boolean): Promise<void>;
}

/** What a Google token endpoint returned, with times made absolute. */
export interface TokenSet {
  accessToken: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  /** Sorted scopes the access token carries. */
  scopes: string[];
  /** Present only when Google issued one (consent, or rotation on refresh). */
  refreshToken?: string;
  idToken?: string;
}

/** Claims of a verified Google ID token that TokenBroker uses. */
export interface IdentityClaims {
  sub: string;
  azp?: string;
  email?: string;
  emailVerified?: boolean;
  name?: string;
  picture?: string;
  locale?: string;
  givenName?: string;
  familyName?: string;
  hostedDomain?: string;
  /** When Google issued the token (ms since the epoch, second precision). */
  issuedAt?: number;
}

/**
 * Google's OAuth endpoints. Implementations throw {@link OAuthError} for
 * errors Google answered and BrokerError UPSTREAM_UNAVAILABLE for the rest.
 * Every attempt and retry of a call ends by its `deadline`.
 */
export interface GoogleOAuth {
  /** Exchanges a one-time authorization code. */
  exchangeCode(code: string, redirectUri: string, deadline: Deadline): Promise<TokenSet>;
  /** Gets a new access token; `scopes` narrows it to a subset of the grant. */
  refresh(refreshToken: string, scopes: readonly string[] | undefined, deadline: Deadline): Promise<TokenSet>;
  /**
   * Verifies an ID token's signature, issuer, audience (our server client ID)
   * and expiry. Throws BrokerError INVALID_ID_TOKEN. The azp check is the caller's.
   */
  verifyIdToken(idToken: string): Promise<IdentityClaims>;
  /** Revokes a refresh or access token (and so its whole grant); an already dead token counts as revoked. */
  revoke(token: string, deadline: Deadline): Promise<void>;
}

/**
 * An error response of Google's token endpoint (RFC 6749 section 5.2), with
 * only the error code kept: descriptions are Google's and may change.
 */
export class OAuthError extends Error {
  override readonly name = 'OAuthError';

  /**
   * @param oauthCode the `error` field, e.g. invalid_grant
   * @param status the HTTP status
   * @param subtype Google's `error_subtype` when present (e.g. invalid_rapt)
   */
  constructor(
    readonly oauthCode: string,
    readonly status: number,
    readonly subtype?: string,
  ) {
    super(`Google OAuth answered ${status} ${oauthCode}${subtype ? ` (${subtype})` : ''}`);
  }
}

/** What the ledger knows of one code (keyed by its hash, never the code). */
export type ExchangeRecord =
  | { state: 'PENDING'; expiresAt: number }
  | { state: 'DONE'; userId: string; created: boolean; expiresAt: number };

/**
 * Remembers recent code exchanges by the code's hash, shared by every
 * replica, so a retried ExchangeCode gets the first answer instead of
 * Google's invalid_grant for a code already spent.
 */
export interface ExchangeLedger {
  /**
   * Atomically claims `codeHash` with a PENDING record valid until
   * `pendingUntil`. Resolves undefined when the caller now owns it, or with
   * the live record someone else holds. Expired records count as absent.
   */
  claim(codeHash: string, pendingUntil: number): Promise<ExchangeRecord | undefined>;
  /** Records the outcome of an owned claim, kept until `until` (unless {@link GrantStore.update} recorded it). */
  complete(codeHash: string, outcome: { userId: string; created: boolean }, until: number): Promise<void>;
  /** Drops an owned claim whose exchange failed. */
  release(codeHash: string): Promise<void>;
  /** The live record of `codeHash`, if any. */
  get(codeHash: string): Promise<ExchangeRecord | undefined>;
}

/**
 * The ledger's DONE record of an exchange whose claim its caller owns,
 * handed to {@link GrantStore.update} so the grant and the record that
 * replays it to retries are one write: a sign-in costs one Firestore write
 * fewer, and no stored grant is left without its record.
 */
export interface ExchangeCompletion {
  /** The ledger key: SHA-256 (hex) of the code. */
  codeHash: string;
  /** Until when retries get the record (ms since the epoch). */
  until: number;
}

/** One grant of a {@link GrantStore.listGrants} page. */
export type ListedGrant = { userId: string; grant: GrantRecord } | { userId: string; error: unknown };

/**
 * Security Event Tokens already processed, by `jti`, shared by every
 * replica: Google may deliver one token more than once. Failures throw
 * BrokerError STORE_UNAVAILABLE.
 */
export interface SecurityEventLedger {
  /** Whether a token with this `jti` was processed already. */
  seen(jti: string): Promise<boolean>;
  /**
   * Records that the token was processed; resolves false when another
   * delivery of it recorded it first.
   */
  record(jti: string, entry: { issuedAt: number; eventTypes: string[] }): Promise<boolean>;
}
