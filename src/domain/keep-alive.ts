import type { Logger } from '../observability/logger';
import { isBrokerError } from './broker-error';
import type { Clock } from './clock';
import type { GrantRecord } from './grant';
import type { GrantStore } from './ports';
import type { TokenBroker } from './token-broker';
import { forEachGrant } from './user-pages';

/** What {@link keepGrantsAlive} does and where it starts. */
export interface KeepAliveOptions {
  /** A grant not refreshed for this long is refreshed now. */
  unusedForMs: number;
  /** Most refreshes per second, to stay far below Google's quotas. */
  refreshesPerSecond: number;
  pageSize: number;
  /** Resume after this user ID (the `lastUserId` of an interrupted run). */
  startAfter?: string;
}

/** What a keep-alive run did. */
export interface KeepAliveReport {
  scanned: number;
  /** Active grants unused for longer than the limit. */
  due: number;
  refreshed: number;
  /** Google refused the refresh token: marked REAUTH_REQUIRED like any other dead grant. */
  dead: number;
  /** Failed for another reason (Google or Firestore unavailable): run again. */
  failed: number;
  lastUserId?: string;
}

/**
 * The keep-alive job: Google expires refresh tokens left unused for six
 * months, so every active grant not refreshed for `unusedForMs` is
 * refreshed once now, through the service's own refresh path (shared lease,
 * rotation stored, invalid_grant recorded as dead). Pages through the
 * grants in user-ID order; rate-limited; a run can be resumed or repeated
 * (grants refreshed by it are no longer due).
 */
export async function keepGrantsAlive(
  store: GrantStore,
  broker: TokenBroker,
  clock: Clock,
  logger: Logger,
  options: KeepAliveOptions,
): Promise<KeepAliveReport> {
  const report: KeepAliveReport = { scanned: 0, due: 0, refreshed: 0, dead: 0, failed: 0 };
  const cutoff = clock.now() - options.unusedForMs;
  const spacingMs = 1000 / options.refreshesPerSecond;
  let nextSlot = performance.now();
  await forEachGrant(
    store,
    options,
    async (listed) => {
      const { userId } = listed;
      report.scanned += 1;
      report.lastUserId = userId;
      if ('error' in listed) {
        report.failed += 1;
        logger.warn({ event: 'keep_alive_failed', userId, code: isBrokerError(listed.error) ? listed.error.code : 'unknown' }, 'a grant could not be read');
        return;
      }
      // Due as listed; the refresh reads the grant again before it acts.
      const { grant } = listed;
      if (grant.status !== 'ACTIVE' || lastUse(grant) > cutoff) return;
      report.due += 1;
      const wait = nextSlot - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      nextSlot = Math.max(nextSlot, performance.now()) + spacingMs;
      try {
        await broker.refreshWholeGrant(userId);
        report.refreshed += 1;
      } catch (err: unknown) {
        if (isBrokerError(err, 'REAUTH_REQUIRED')) report.dead += 1;
        else report.failed += 1;
        logger.warn({ event: 'keep_alive_refresh_failed', userId, code: isBrokerError(err) ? err.code : 'unknown' }, 'a due grant was not refreshed');
      }
    },
    () => logger.info({ event: 'keep_alive_progress', ...report }, 'keeping grants alive'),
  );
  return report;
}

/** The last time the grant was used at Google: its last refresh, else its latest sign-in, else its creation. */
function lastUse(grant: GrantRecord): number {
  return grant.lastRefreshedAt ?? grant.signedInAt ?? grant.createdAt;
}
