import { randomUUID } from 'node:crypto';
import { Sealer } from '../crypto/sealer';
import type { Logger } from '../observability/logger';
import { NO_METRICS, type Metrics } from '../observability/metrics';
import type { CachedToken } from './access-token-cache';
import { BrokerError } from './broker-error';
import type { Clock } from './clock';
import type { Deadline } from './deadline';
import { grantVersion, type GrantRecord } from './grant';
import type { SharedTokenRecord, SharedTokenStore } from './ports';

/** Tunables of {@link SharedRefresh}. */
export interface SharedRefreshOptions {
  /** How long a claim to refresh holds; longer than the longest refresh. */
  leaseMs: number;
  /** Pause between looks at a record another replica is refreshing. */
  pollMs: number;
}

/** What one refresh produced: the token, and the grant as stored after it (its refresh token may have rotated). */
export interface RefreshOutcome {
  token: CachedToken;
  grant: GrantRecord;
}

/** One call's view of what it needs: the grant (re-read on demand) and how long the token must last. */
export interface SharedRefreshRequest {
  userId: string;
  scopeKey: string;
  minTtlMs: number;
  deadline: Deadline;
  /** Reads the grant, checking it is alive and covers the scopes. */
  loadGrant(): Promise<GrantRecord>;
  /** Refreshes at Google from `grant` and persists what changed. */
  refresh(grant: GrantRecord): Promise<RefreshOutcome>;
}

/**
 * One refresh per grant and scope set across every replica. A replica that
 * misses its memory cache first looks for a token another replica shared;
 * failing that, it takes a lease in a store transaction, re-reads the grant,
 * refreshes at Google (outside any transaction: those may run twice) and
 * shares the new token, sealed, while giving the lease back. Replicas that
 * find the lease held wait for the shared token; a lease whose holder died
 * expires after `leaseMs` and the next replica takes over.
 */
export class SharedRefresh {
  constructor(
    private readonly store: SharedTokenStore,
    private readonly sealer: Sealer,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly options: SharedRefreshOptions,
    /** Counts shared-token lookups and calls served by another replica's refresh. */
    private readonly metrics: Metrics = NO_METRICS,
  ) {}

  async obtain(request: SharedRefreshRequest): Promise<CachedToken> {
    const { userId, scopeKey } = request;
    for (;;) {
      const [grant, record] = await Promise.all([request.loadGrant(), this.store.get(userId, scopeKey)]);
      const version = grantVersion(grant);
      const shared = this.usable(record, version, request.minTtlMs);
      this.metrics.cacheLookup('shared_token', shared !== undefined);
      if (shared) return shared;

      const holder = randomUUID();
      const now = this.clock.now();
      const { before, after } = await this.store.update(userId, scopeKey, (current) => {
        if (this.usable(current, version, request.minTtlMs, false)) return undefined;
        if (current?.lease && current.lease.until > now) return undefined;
        return { userId, scopeKey, token: current?.token, lease: { holder, until: now + this.options.leaseMs } };
      });
      if (after?.lease?.holder === holder) {
        if (before?.lease) {
          this.logger.warn({ event: 'refresh_lease_taken_over', userId }, 'a refresh lease expired unreleased; this replica took it over');
        }
        return this.refreshHolding(request, holder);
      }
      // Another replica holds the lease or just shared its token: its refresh serves this call.
      const sharedMeanwhile = this.usable(after, version, request.minTtlMs);
      const awaited = sharedMeanwhile ?? (await this.awaitHolder(request, version));
      if (awaited) {
        this.metrics.refreshJoined('shared');
        return awaited;
      }
    }
  }

  /** Refreshes while holding the lease; shares the token and frees the lease, or only frees it on failure. */
  private async refreshHolding(request: SharedRefreshRequest, holder: string): Promise<CachedToken> {
    const { userId, scopeKey } = request;
    let outcome: RefreshOutcome;
    try {
      // Re-read now that the lease is ours: a refresh finished just before
      // may have rotated the refresh token, and the old one may be dead.
      outcome = await request.refresh(await request.loadGrant());
    } catch (err: unknown) {
      await this.store
        .update(userId, scopeKey, (current) => (current?.lease?.holder === holder ? { ...current, lease: undefined } : undefined))
        .catch((releaseErr: unknown) => this.logStoreFailure('refresh_lease_release_failed', userId, releaseErr));
      throw err;
    }
    const { token, grant } = outcome;
    const sealed = this.sealer.seal(token.accessToken, accessTokenContext(userId, scopeKey));
    const shared = { sealed, expiresAt: token.expiresAt, scopes: token.scopes, grantVersion: grantVersion(grant) };
    // The token is good whether or not sharing it works; a failure here
    // only means another replica refreshes once more after the lease expires.
    await this.store
      .update(userId, scopeKey, (current) => {
        const lease = current?.lease?.holder === holder ? undefined : current?.lease;
        const newer = current?.token && current.token.grantVersion === shared.grantVersion && current.token.expiresAt > shared.expiresAt;
        return { userId, scopeKey, lease, token: newer ? current.token : shared };
      })
      .catch((err: unknown) => this.logStoreFailure('shared_token_write_failed', userId, err));
    return token;
  }

  /**
   * Polls the record another replica holds the lease of, until its token
   * arrives (returned), or the lease is gone or names another grant
   * (undefined: start over), or the deadline passes.
   */
  private async awaitHolder(request: SharedRefreshRequest, version: string): Promise<CachedToken | undefined> {
    for (;;) {
      const pause = this.options.pollMs * (0.5 + Math.random());
      if (request.deadline.remainingMs() <= pause) {
        throw new BrokerError('DEADLINE_EXCEEDED', 'the call ran out of time waiting for another replica to refresh the token');
      }
      await new Promise((resolve) => setTimeout(resolve, pause));
      const record = await this.store.get(request.userId, request.scopeKey);
      const shared = this.usable(record, version, request.minTtlMs);
      if (shared) return shared;
      const leaseLive = record?.lease !== undefined && record.lease.until > this.clock.now();
      const otherGrant = record?.token !== undefined && record.token.grantVersion !== version;
      if (!leaseLive || otherGrant) return undefined;
    }
  }

  /**
   * The record's token if it came from this grant version, lasts `minTtlMs`
   * more and opens. One that does not open (tampered, moved, unknown key)
   * counts as absent, so a refresh replaces it; `log` reports it (false
   * inside transactions, which may run twice).
   */
  private usable(record: SharedTokenRecord | undefined, version: string, minTtlMs: number, log = true): CachedToken | undefined {
    const token = record?.token;
    if (!token || token.grantVersion !== version || token.expiresAt - this.clock.now() < minTtlMs) return undefined;
    try {
      const accessToken = this.sealer.open(token.sealed, accessTokenContext(record.userId, record.scopeKey));
      return { accessToken, expiresAt: token.expiresAt, scopes: token.scopes };
    } catch (err: unknown) {
      if (log) {
        this.logger.error({ event: 'shared_token_unreadable', userId: record.userId, keyId: token.sealed.keyId, code: errorCode(err) }, 'a shared access token did not open; refreshing instead');
      }
      return undefined;
    }
  }

  private logStoreFailure(event: string, userId: string, err: unknown): void {
    this.logger.warn({ event, userId, code: errorCode(err) }, 'shared token record not updated');
  }
}

function errorCode(err: unknown): string {
  return err instanceof BrokerError ? err.code : 'unknown';
}

/** Associated data of a shared access token: its user and scope set. */
function accessTokenContext(userId: string, scopeKey: string): string {
  return Sealer.context(userId, `access_token/${scopeKey}`);
}
