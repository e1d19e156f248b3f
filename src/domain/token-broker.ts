import type { Logger } from '../observability/logger';
import { deadReasonLabel, NO_METRICS, type Metrics } from '../observability/metrics';
import { Sealer } from '../crypto/sealer';
import { AccessTokenCache, type CachedToken } from './access-token-cache';
import { BrokerError, isBrokerError } from './broker-error';
import type { Clock } from './clock';
import { Deadline } from './deadline';
import { REFRESH_TOKEN_FIELD, riscTokenHash, type GrantRecord, type Profile } from './grant';
import {
  OAuthError,
  type ExchangeCompletion,
  type ExchangeLedger,
  type GoogleOAuth,
  type GrantMutation,
  type GrantStore,
  type IdentityClaims,
  type RevocationLedger,
  type SharedTokenStore,
  type TokenSet,
} from './ports';
import { IdempotentExchange, type PerformedExchange } from './idempotent-exchange';
import { ProfileCache } from './profile-cache';
import { missingScopes, normalizeScopes } from './scopes';
import { SharedRefresh, type RefreshOutcome } from './shared-refresh';
import { SingleFlight } from './single-flight';
import { checkUserId } from './user-id';

/** Tunables of {@link TokenBroker}; every default is set in config. */
export interface TokenBrokerOptions {
  /** App (iOS/Android/web) client IDs allowed as the ID token's `azp`; empty allows any. */
  allowedAppClientIds: readonly string[];
  /** min_ttl when a caller sets none. */
  defaultMinTtlMs: number;
  /** Largest min_ttl honoured; larger requests are capped to it (Google tokens live 1 h). */
  maxMinTtlMs: number;
  /** How long GetProfile answers from memory. */
  profileCacheTtlMs: number;
  /** Bound on users whose access tokens are cached per process. */
  maxCachedUsers: number;
  /** How long a retry of the same auth code replays the first answer. */
  exchangeReplayWindowMs: number;
  /** How long one exchange may hold its code's claim before another replica may retry it. */
  exchangePendingTimeoutMs: number;
  /** Budget of a call made without a deadline (direct calls; gRPC passes its own). */
  callTimeoutMs: number;
  /** How long one replica's claim to refresh a grant holds before another may take it over. */
  refreshLeaseMs: number;
}

/** Everything {@link TokenBroker} talks to, passed in by the composition root. */
export interface TokenBrokerDeps {
  store: GrantStore;
  shared: SharedTokenStore;
  revocations: RevocationLedger;
  exchanges: ExchangeLedger;
  oauth: GoogleOAuth;
  sealer: Sealer;
  clock: Clock;
  logger: Logger;
  /** Counts cache lookups, refreshes, joins and dead grants (default: nothing recorded). */
  metrics?: Metrics;
}

/** Result of {@link TokenBroker.exchangeCode}. */
export interface ExchangeResult {
  userId: string;
  profile: Profile;
  grantedScopes: string[];
  /** True when this exchange stored the user for the first time. */
  created: boolean;
}

/** Result of {@link TokenBroker.revokeUser}. */
export interface RevokeResult {
  /** False when no grant was stored. */
  wasStored: boolean;
  /** DONE: Google revoked it; PENDING: kept for the retry job; NOT_NEEDED: nothing to revoke. */
  google: 'DONE' | 'PENDING' | 'NOT_NEEDED';
}

/** Result of {@link TokenBroker.getAccessToken}. */
export type AccessToken = CachedToken;

const MAX_AUTH_CODE_LENGTH = 2048;
const MAX_REDIRECT_URI_LENGTH = 2048;

/**
 * The broker's domain logic: exchanging codes into stored grants and serving
 * access tokens from them. Knows nothing of gRPC; every failure is a BrokerError.
 */
export class TokenBroker {
  private readonly tokens: AccessTokenCache;
  private readonly profiles: ProfileCache;
  private readonly refreshes = new SingleFlight<CachedToken>();
  private readonly idempotent: IdempotentExchange<ExchangeResult>;
  private readonly shared: SharedRefresh;
  private readonly metrics: Metrics;

  constructor(
    private readonly deps: TokenBrokerDeps,
    private readonly options: TokenBrokerOptions,
  ) {
    this.tokens = new AccessTokenCache(deps.clock, options.maxCachedUsers);
    this.profiles = new ProfileCache(deps.clock, options.profileCacheTtlMs);
    this.idempotent = new IdempotentExchange(deps.exchanges, deps.clock, {
      replayWindowMs: options.exchangeReplayWindowMs,
      pendingTimeoutMs: options.exchangePendingTimeoutMs,
      pollIntervalMs: 100,
    });
    this.metrics = deps.metrics ?? NO_METRICS;
    this.shared = new SharedRefresh(deps.shared, deps.sealer, deps.clock, deps.logger, { leaseMs: options.refreshLeaseMs, pollMs: 100 }, this.metrics);
  }

  /**
   * Exchanges a one-time server auth code at Google, verifies the ID token and
   * stores the grant. A response without a refresh token keeps the stored one;
   * with none stored the user must consent again (CONSENT_REQUIRED). The same
   * code retried within the replay window gets the first answer (the
   * grant's current profile and scopes) instead of INVALID_AUTH_CODE.
   */
  async exchangeCode(authCode: string, redirectUri: string, deadline = Deadline.in(this.options.callTimeoutMs)): Promise<ExchangeResult> {
    if (authCode.length === 0 || authCode.length > MAX_AUTH_CODE_LENGTH) {
      throw new BrokerError('INVALID_REQUEST', `auth_code must be 1 to ${MAX_AUTH_CODE_LENGTH} characters`, {
        metadata: { field: 'auth_code' },
      });
    }
    if (redirectUri.length > MAX_REDIRECT_URI_LENGTH) {
      throw new BrokerError('INVALID_REQUEST', `redirect_uri must be at most ${MAX_REDIRECT_URI_LENGTH} characters`, {
        metadata: { field: 'redirect_uri' },
      });
    }
    const outcome = await this.idempotent.run(authCode, (completion) => this.exchangeAtGoogle(authCode, redirectUri, deadline, completion));
    if ('result' in outcome) return outcome.result;
    const grant = await this.deps.store.get(outcome.replay.userId);
    if (!grant) throw userNotFound();
    return { userId: grant.userId, profile: grant.profile, grantedScopes: grant.scopes, created: outcome.replay.created };
  }

  private async exchangeAtGoogle(authCode: string, redirectUri: string, deadline: Deadline, completion: ExchangeCompletion): Promise<PerformedExchange<ExchangeResult>> {
    const tokens = await this.deps.oauth.exchangeCode(authCode, redirectUri, deadline).catch((err: unknown) => {
      // invalid_grant on a code exchange means the code is used, expired,
      // unknown or issued for another redirect URI: the caller's input is bad.
      if (err instanceof OAuthError && err.oauthCode === 'invalid_grant') {
        throw new BrokerError('INVALID_AUTH_CODE', 'the auth code is invalid, expired or already used', { cause: err });
      }
      throw mapCommonOAuthError(err);
    });
    if (!tokens.idToken) {
      throw new BrokerError('INVALID_ID_TOKEN', 'Google returned no ID token: the sign-in must request the openid scope');
    }
    const claims = await this.deps.oauth.verifyIdToken(tokens.idToken);
    this.checkAuthorizedParty(claims);
    const userId = checkUserId(claims.sub);
    const profile = profileFromClaims(claims);
    const sealed = tokens.refreshToken
      ? this.deps.sealer.seal(tokens.refreshToken, Sealer.context(userId, REFRESH_TOKEN_FIELD))
      : undefined;
    const now = this.deps.clock.now();
    const signedInAt = claims.issuedAt ?? now;

    let superseded = false;
    const { before, after, completed } = await this.storeExchange(userId, tokens.refreshToken, completion, (current) => {
      // Two sign-ins of one user racing: the one Google issued later wins,
      // whichever reaches the store last.
      superseded = current?.signedInAt !== undefined && current.signedInAt > signedInAt;
      if (superseded) return undefined;
      if (sealed) {
        return {
          userId,
          profile,
          scopes: tokens.scopes,
          refreshToken: sealed,
          refreshTokenHash: riscTokenHash(tokens.refreshToken as string),
          status: 'ACTIVE',
          signedInAt,
          createdAt: current?.createdAt ?? now,
          updatedAt: now,
        };
      }
      // Google sends a refresh token only when the user saw the consent
      // screen; a later sign-in carries none, and the stored grant stays.
      if (!current || current.status !== 'ACTIVE') {
        throw new BrokerError(
          'CONSENT_REQUIRED',
          'Google granted no refresh token and none is stored: sign the user in again with the consent prompt',
        );
      }
      return { ...current, profile, signedInAt, updatedAt: now };
    });
    const stored = after as GrantRecord;
    if (superseded) {
      // The older grant's refresh token is dropped, not revoked: revoking
      // any token of a grant revokes the user's whole grant to this client,
      // the newer one included.
      this.deps.logger.info({ event: 'older_sign_in_ignored', userId }, 'a newer sign-in is already stored; this one was not applied');
      return { result: { userId, profile: stored.profile, grantedScopes: stored.scopes, created: false }, completed };
    }
    this.profiles.set(stored.profile);
    if (sealed) {
      // A new grant replaces the old one (its scopes may differ). Its access
      // token covers the whole grant: keep it so the first GetAccessToken
      // needs no refresh.
      this.tokens.deleteUser(userId);
      this.tokens.set(userId, AccessTokenCache.scopeKey([]), {
        accessToken: tokens.accessToken,
        expiresAt: tokens.expiresAt,
        scopes: tokens.scopes,
      });
    }
    this.deps.logger.info({ event: 'grant_stored', userId, created: !before, newRefreshToken: !!sealed }, 'grant stored');
    return { result: { userId, profile: stored.profile, grantedScopes: stored.scopes, created: !before }, completed };
  }

  /**
   * Writes the exchange's grant, with its ledger record where the store can.
   * When the write fails although Google gave us a refresh token, that token
   * is revoked (best effort): nobody could use it, it would count against
   * Google's per-user limit of live grants, and the user can simply sign in
   * again.
   */
  private async storeExchange(userId: string, refreshToken: string | undefined, completion: ExchangeCompletion, mutate: GrantMutation) {
    try {
      return await this.deps.store.update(userId, mutate, completion);
    } catch (err: unknown) {
      if (refreshToken && isBrokerError(err, 'STORE_UNAVAILABLE')) {
        // The call's own deadline may be spent by now: the revocation gets a budget of its own.
        const revoked = await this.deps.oauth.revoke(refreshToken, Deadline.in(this.options.callTimeoutMs)).then(
          () => true,
          () => false,
        );
        this.deps.logger.error({ event: 'orphan_grant', userId, revoked }, 'storing a new grant failed; its refresh token was sent for revocation at Google');
      }
      throw err;
    }
  }

  /**
   * Returns an access token for `userId` valid for at least `minTtlMs`
   * (default from options, capped at maxMinTtlMs), carrying exactly
   * `scopes` (empty: the whole grant). Served from memory while fresh;
   * otherwise one refresh per user and scope set is shared by concurrent calls.
   */
  async getAccessToken(
    userId: string,
    scopes: readonly string[],
    minTtlMs?: number,
    deadline = Deadline.in(this.options.callTimeoutMs),
  ): Promise<AccessToken> {
    checkUserId(userId);
    const wanted = normalizeScopes(scopes);
    if (minTtlMs !== undefined && (!Number.isFinite(minTtlMs) || minTtlMs < 0)) {
      throw new BrokerError('INVALID_REQUEST', 'min_ttl must not be negative', { metadata: { field: 'min_ttl' } });
    }
    const ttl = Math.min(minTtlMs ?? this.options.defaultMinTtlMs, this.options.maxMinTtlMs);
    const scopeKey = AccessTokenCache.scopeKey(wanted);
    const cached = this.tokens.get(userId, scopeKey, ttl);
    this.metrics.cacheLookup('access_token', cached !== undefined);
    if (cached) return cached;
    // A refresh started for a shorter min_ttl may hand back a token that does
    // not last long enough for this caller; fresh tokens live ~1 h and ttl is
    // capped below that, so the shared result always satisfies it.
    for (;;) {
      let started = false;
      try {
        const flight = this.refreshes.run(`${userId} ${scopeKey}`, async () => {
          started = true;
          const token = await this.shared.obtain({
            userId,
            scopeKey,
            minTtlMs: ttl,
            deadline,
            loadGrant: () => this.loadGrantCovering(userId, wanted),
            refresh: (grant) => this.refreshAtGoogle(grant, wanted, deadline),
          });
          this.tokens.set(userId, scopeKey, token);
          return token;
        });
        // run() starts a new flight synchronously; not started means this call joined one under way.
        if (!started) this.metrics.refreshJoined('local');
        return await flight;
      } catch (err: unknown) {
        // A shared flight runs within the budget of the call that started
        // it; a caller that joined with more time left starts its own.
        if (!started && isBrokerError(err, 'DEADLINE_EXCEEDED') && deadline.remainingMs() > 0) continue;
        throw err;
      }
    }
  }

  /**
   * The answer {@link getAccessToken} would give from memory alone, or
   * undefined when it would need to check its input, the store or Google
   * (then call getAccessToken, which throws what the input deserves).
   * Synchronous, for the hot path: a hit costs two map lookups.
   */
  cachedAccessToken(userId: string, scopes: readonly string[], minTtlMs?: number): AccessToken | undefined {
    if (minTtlMs !== undefined && !(minTtlMs >= 0)) return undefined;
    const ttl = Math.min(minTtlMs ?? this.options.defaultMinTtlMs, this.options.maxMinTtlMs);
    // Only checked input is ever stored, so a hit is input getAccessToken accepts.
    const key = normalizedScopeKey(scopes);
    const cached = key === undefined ? undefined : this.tokens.get(userId, key, ttl);
    // Misses are counted by getAccessToken, which a miss here leads to.
    if (cached) this.metrics.cacheLookup('access_token', true);
    return cached;
  }

  /**
   * Revokes the user's grant at Google and deletes what is stored for the
   * user, telling every replica through the revocation ledger. The ledger
   * entry is written before anything is deleted, so a revocation Google did
   * not confirm keeps the refresh token for the retry job. Idempotent.
   */
  async revokeUser(userId: string, deadline = Deadline.in(this.options.callTimeoutMs)): Promise<RevokeResult> {
    checkUserId(userId);
    let grant: GrantRecord | undefined;
    let unreadable = false;
    try {
      grant = await this.deps.store.get(userId);
    } catch (err: unknown) {
      // A document that no longer fits the schema is still deleted on purpose.
      if (!isBrokerError(err, 'STORED_DATA_UNREADABLE')) throw err;
      unreadable = true;
    }
    let google: RevokeResult['google'] = 'NOT_NEEDED';
    let pending: GrantRecord['refreshToken'] | undefined;
    if (grant) {
      let refreshToken: string | undefined;
      try {
        refreshToken = this.deps.sealer.open(grant.refreshToken, Sealer.context(userId, REFRESH_TOKEN_FIELD));
      } catch (err: unknown) {
        this.deps.logger.error({ event: 'revoke_unreadable_grant', userId, code: errorCode(err) }, 'the grant\'s refresh token does not open; it is deleted without revoking it at Google');
      }
      if (refreshToken !== undefined) {
        try {
          await this.deps.oauth.revoke(refreshToken, deadline);
          google = 'DONE';
        } catch (err: unknown) {
          google = 'PENDING';
          pending = grant.refreshToken;
          this.deps.logger.warn({ event: 'revocation_pending', userId, code: errorCode(err) }, 'Google did not confirm the revocation; it is kept for retry-revocations');
        }
      }
    }
    await this.deps.revocations.record(userId, pending);
    await this.deps.shared.deleteUser(userId);
    await this.deps.store.delete(userId);
    this.forget(userId);
    return { wasStored: grant !== undefined || unreadable, google };
  }

  /** Drops everything this process holds in memory for the user (another replica revoked it). */
  forget(userId: string): void {
    this.tokens.deleteUser(userId);
    this.profiles.delete(userId);
  }

  /**
   * Drops the user's access tokens everywhere while the grant stays stored:
   * those shared in the store, this replica's, and (through the revocation
   * ledger's feed) every other replica's. For a grant marked dead outside a
   * refresh, by a Cross-Account Protection event.
   */
  async dropTokens(userId: string): Promise<void> {
    await this.deps.shared.deleteUser(userId);
    await this.deps.revocations.announceDrop(userId);
    this.forget(userId);
  }

  /**
   * Refreshes the user's whole grant at Google now, whatever is cached, and
   * records it like any refresh (rotation stored, invalid_grant marked dead).
   * For the keep-alive job.
   */
  async refreshWholeGrant(userId: string, deadline = Deadline.in(this.options.callTimeoutMs)): Promise<void> {
    const grant = await this.loadActiveGrant(checkUserId(userId));
    await this.refreshAtGoogle(grant, [], deadline);
  }

  /** The stored grant's state, scopes and times (never a token), or USER_NOT_FOUND. */
  async getGrantStatus(userId: string): Promise<GrantRecord> {
    checkUserId(userId);
    const grant = await this.deps.store.get(userId);
    if (!grant) throw userNotFound();
    return grant;
  }

  /** Returns the stored profile of `userId` (briefly cached), or USER_NOT_FOUND. */
  async getProfile(userId: string): Promise<Profile> {
    checkUserId(userId);
    const cached = this.profiles.get(userId);
    this.metrics.cacheLookup('profile', cached !== undefined);
    if (cached) return cached;
    const grant = await this.deps.store.get(userId);
    if (!grant) throw userNotFound();
    this.profiles.set(grant.profile);
    return grant.profile;
  }

  /** The user's live grant, checked to cover `wanted`. */
  private async loadGrantCovering(userId: string, wanted: string[]): Promise<GrantRecord> {
    const grant = await this.loadActiveGrant(userId);
    const missing = missingScopes(wanted, grant.scopes);
    if (missing.length > 0) {
      throw new BrokerError('SCOPE_NOT_GRANTED', 'the user has not granted every requested scope', {
        metadata: { missingScopes: missing.join(' ') },
      });
    }
    return grant;
  }

  /** Refreshes at Google from `grant` (the caller holds the refresh lease) and persists what changed. */
  private async refreshAtGoogle(start: GrantRecord, wanted: string[], deadline: Deadline): Promise<RefreshOutcome> {
    let grant = start;
    const userId = grant.userId;
    const context = Sealer.context(userId, REFRESH_TOKEN_FIELD);
    // Asking for the whole grant sends no scope parameter; a subset narrows
    // the token to what the caller asked for.
    const narrowTo = wanted.length > 0 && wanted.length < grant.scopes.length ? wanted : undefined;
    for (let attempt = 1; ; attempt += 1) {
      let tokens: TokenSet;
      const refreshToken = this.deps.sealer.open(grant.refreshToken, context);
      try {
        tokens = await this.deps.oauth.refresh(refreshToken, narrowTo, deadline);
        this.metrics.refresh('ok');
      } catch (err: unknown) {
        const invalidGrant = err instanceof OAuthError && err.oauthCode === 'invalid_grant';
        this.metrics.refresh(invalidGrant ? 'invalid_grant' : 'failed');
        if (!invalidGrant) throw mapCommonOAuthError(err);
        const replacement = await this.recordDead(grant, err);
        // A sign-in stored a new refresh token while ours was failing: use it (once).
        if (!replacement || attempt > 1) throw reauthRequired(err);
        grant = replacement;
        continue;
      }
      return this.keep(grant, tokens, wanted, context);
    }
  }

  /**
   * invalid_grant on refresh is permanent (revoked, expired, password change,
   * session policy): marks the grant dead, unless a sign-in replaced its
   * refresh token meanwhile, in which case that newer grant is returned.
   */
  private async recordDead(grant: GrantRecord, err: OAuthError): Promise<GrantRecord | undefined> {
    const reason = err.subtype ?? err.oauthCode;
    const { before, after } = await this.deps.store.update(grant.userId, (current) =>
      current && current.status === 'ACTIVE' && sameBox(current, grant)
        ? { ...current, status: 'REAUTH_REQUIRED', deadReason: reason, updatedAt: this.deps.clock.now() }
        : undefined,
    );
    this.tokens.deleteUser(grant.userId);
    if (after && after.status === 'ACTIVE' && !sameBox(after, grant)) return after;
    if (before?.status === 'ACTIVE' && after?.status === 'REAUTH_REQUIRED') this.metrics.grantMarkedDead(deadReasonLabel(reason));
    this.deps.logger.warn({ event: 'grant_dead', userId: grant.userId, reason }, 'refresh token rejected by Google');
    return undefined;
  }

  /**
   * Persists what a refresh changed (rotated refresh token, new profile).
   * The outcome names the grant the token belongs to: the stored one when
   * the rotated refresh token went in, else the one refreshed from.
   */
  private async keep(grant: GrantRecord, tokens: TokenSet, wanted: string[], context: string): Promise<RefreshOutcome> {
    const userId = grant.userId;
    const rotated = tokens.refreshToken ? this.deps.sealer.seal(tokens.refreshToken, context) : undefined;
    const fresh = tokens.idToken ? await this.profileFromRefresh(tokens.idToken, userId) : undefined;
    const profile = fresh && !sameProfile(fresh, grant.profile) ? fresh : undefined;
    let source = grant;
    // A rotated refresh token must be stored before we answer: the old one
    // may already be dead at Google. The refresh time is recorded for the
    // grant's status and the keep-alive job.
    const now = this.deps.clock.now();
    const { after } = await this.deps.store.update(userId, (current) => {
      if (!current) return undefined;
      const next: GrantRecord = { ...current, lastRefreshedAt: now, updatedAt: now };
      if (rotated && sameBox(current, grant)) {
        next.refreshToken = rotated;
        next.refreshTokenHash = riscTokenHash(tokens.refreshToken as string);
      }
      if (profile) next.profile = profile;
      return next;
    });
    if (rotated && after && after.refreshToken === rotated) source = after;
    if (profile) this.profiles.set(profile);
    const token: CachedToken = {
      accessToken: tokens.accessToken,
      expiresAt: tokens.expiresAt,
      scopes: tokens.scopes.length > 0 ? tokens.scopes : wanted.length > 0 ? wanted : grant.scopes,
    };
    return { token, grant: source };
  }

  /** A fresh ID token in a refresh response updates the profile; a bad one is logged and ignored. */
  private async profileFromRefresh(idToken: string, userId: string): Promise<Profile | undefined> {
    try {
      const claims = await this.deps.oauth.verifyIdToken(idToken);
      if (claims.sub !== userId) {
        this.deps.logger.error({ event: 'id_token_subject_mismatch', userId }, 'refresh returned an ID token for another subject');
        return undefined;
      }
      return profileFromClaims(claims);
    } catch (err: unknown) {
      this.deps.logger.warn({ event: 'refresh_id_token_rejected', userId, code: errorCode(err) }, 'ignored an unverifiable ID token from a refresh');
      return undefined;
    }
  }

  private async loadActiveGrant(userId: string): Promise<GrantRecord> {
    const grant = await this.deps.store.get(userId);
    if (!grant) throw userNotFound();
    if (grant.status !== 'ACTIVE') {
      throw new BrokerError('REAUTH_REQUIRED', 'the user must sign in again: Google no longer accepts the stored grant', {
        metadata: { deadReason: grant.deadReason ?? 'unknown' },
      });
    }
    return grant;
  }

  private checkAuthorizedParty(claims: IdentityClaims): void {
    const allowed = this.options.allowedAppClientIds;
    if (allowed.length === 0) return;
    // google-auth-library checks aud but not azp: azp names the app the user
    // signed in to, and only our own apps may hand us their users' codes.
    if (!claims.azp || !allowed.includes(claims.azp)) {
      throw new BrokerError('INVALID_ID_TOKEN', 'the ID token was issued to an app client this service does not accept');
    }
  }
}

function profileFromClaims(claims: IdentityClaims): Profile {
  return {
    userId: claims.sub,
    email: claims.email ?? '',
    emailVerified: claims.emailVerified ?? false,
    name: claims.name ?? '',
    pictureUrl: claims.picture ?? '',
    locale: claims.locale ?? '',
    givenName: claims.givenName ?? '',
    familyName: claims.familyName ?? '',
    hostedDomain: claims.hostedDomain ?? '',
  };
}

function sameProfile(a: Profile, b: Profile): boolean {
  return (Object.keys(a) as Array<keyof Profile>).every((k) => a[k] === b[k]);
}

function sameBox(a: GrantRecord, b: GrantRecord): boolean {
  return a.refreshToken.keyId === b.refreshToken.keyId && a.refreshToken.ciphertext.equals(b.refreshToken.ciphertext);
}

function userNotFound(): BrokerError {
  return new BrokerError('USER_NOT_FOUND', 'no grant is stored for this user');
}

function reauthRequired(cause: OAuthError): BrokerError {
  return new BrokerError('REAUTH_REQUIRED', 'the user must sign in again: Google no longer accepts the stored grant', {
    metadata: { deadReason: cause.subtype ?? cause.oauthCode },
    cause,
  });
}

/** Maps OAuth errors shared by every grant type; anything else passes through. */
function mapCommonOAuthError(err: unknown): unknown {
  if (!(err instanceof OAuthError)) return err;
  // invalid_client / unauthorized_client mean our own client ID or secret is
  // wrong: nothing the caller can fix, so it must not look like their error.
  if (err.oauthCode === 'invalid_client' || err.oauthCode === 'unauthorized_client') {
    return new BrokerError('OAUTH_CLIENT_REJECTED', 'Google rejected this service\'s OAuth client credentials', { cause: err });
  }
  if (err.oauthCode === 'invalid_scope') {
    return new BrokerError('SCOPE_NOT_GRANTED', 'Google refused the requested scopes for this grant', { cause: err });
  }
  return new BrokerError('UPSTREAM_UNAVAILABLE', 'Google\'s token endpoint returned an unexpected error', { cause: err });
}

function errorCode(err: unknown): string {
  return err instanceof BrokerError ? err.code : err instanceof Error ? err.name : 'unknown';
}

/**
 * The cache key of `scopes` if they are already in normalized form (sorted,
 * no repeats, none empty or holding a space, so keys of different lists
 * never meet), else undefined.
 */
function normalizedScopeKey(scopes: readonly string[]): string | undefined {
  for (let i = 0; i < scopes.length; i += 1) {
    const scope = scopes[i] as string;
    if (scope.length === 0 || scope.includes(' ') || (i > 0 && !((scopes[i - 1] as string) < scope))) return undefined;
  }
  return AccessTokenCache.scopeKey(scopes);
}
