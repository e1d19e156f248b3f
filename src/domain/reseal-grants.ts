import { Sealer } from '../crypto/sealer';
import type { Logger } from '../observability/logger';
import { isBrokerError } from './broker-error';
import { REFRESH_TOKEN_FIELD } from './grant';
import type { GrantStore } from './ports';
import { forEachUserId } from './user-pages';

/** Where {@link resealGrants} starts and how much it reads at once. */
export interface ResealOptions {
  /** Resume after this user ID (the `lastUserId` of an interrupted run). */
  startAfter?: string;
  pageSize: number;
}

/** What a {@link resealGrants} run did. */
export interface ResealReport {
  /** Grants looked at. */
  scanned: number;
  /** Grants sealed again under the primary key by this run. */
  resealed: number;
  /** Grants already under the primary key. */
  current: number;
  /** Grants whose refresh token did not open (unknown key, tampered): left untouched. */
  unreadable: number;
  /** Grants the store failed on: run again to retry them. */
  failed: number;
  /** The last user ID looked at: pass it as startAfter to resume. */
  lastUserId?: string;
}

/**
 * Key rotation: seals every stored refresh token again under the keyset's
 * primary key, page by page in user-ID order. Each grant is rewritten by a
 * conditional update of the store, so it is safe while replicas serve
 * traffic (a concurrent rotation of the refresh token makes the update
 * re-read and re-seal the new one), and a run can simply be repeated or
 * resumed: grants already under the primary key are left alone. When a
 * run reports resealed + unreadable + failed = 0, no grant needs an old key.
 */
export async function resealGrants(store: GrantStore, sealer: Sealer, logger: Logger, options: ResealOptions): Promise<ResealReport> {
  const report: ResealReport = { scanned: 0, resealed: 0, current: 0, unreadable: 0, failed: 0 };
  await forEachUserId(
    store,
    options,
    async (userId) => {
      report.scanned += 1;
      report.lastUserId = userId;
      const context = Sealer.context(userId, REFRESH_TOKEN_FIELD);
      try {
        let resealed = false;
        await store.update(userId, (grant) => {
          resealed = false;
          if (!grant || grant.refreshToken.keyId === sealer.primaryKeyId) return undefined;
          resealed = true;
          return { ...grant, refreshToken: sealer.reseal(grant.refreshToken, context) };
        });
        if (resealed) report.resealed += 1;
        else report.current += 1;
      } catch (err: unknown) {
        if (isBrokerError(err, 'STORED_DATA_UNREADABLE')) {
          report.unreadable += 1;
          logger.error({ event: 'reseal_unreadable', userId, code: err.code, keyId: err.metadata.keyId }, 'a stored refresh token did not open; left as it is');
        } else {
          report.failed += 1;
          logger.warn({ event: 'reseal_failed', userId, code: isBrokerError(err) ? err.code : 'unknown' }, 'a grant could not be resealed');
        }
      }
    },
    () => logger.info({ event: 'reseal_progress', ...report }, 'resealing grants'),
  );
  return report;
}
