import { Sealer } from '../crypto/sealer';
import type { Logger } from '../observability/logger';
import { BrokerError } from './broker-error';
import { Deadline } from './deadline';
import { REFRESH_TOKEN_FIELD } from './grant';
import type { GoogleOAuth, RevocationLedger } from './ports';

/** What a {@link retryRevocations} run did. */
export interface RetryRevocationsReport {
  /** Pending revocations looked at. */
  pending: number;
  /** Confirmed by Google this run. */
  revoked: number;
  /** Google failed again: still pending, attempt counted. */
  failed: number;
  /** The kept refresh token does not open (key removed, tampered): cannot be revoked, logged. */
  unreadable: number;
}

/**
 * The retry-revocations job: tells Google about every revocation RevokeUser
 * could not get confirmed, page by page. Confirmed ones are settled; the
 * rest stay pending with their attempt counted, and the report says so.
 */
export async function retryRevocations(
  ledger: RevocationLedger,
  oauth: GoogleOAuth,
  sealer: Sealer,
  logger: Logger,
  options: { pageSize: number; callTimeoutMs: number },
): Promise<RetryRevocationsReport> {
  const report: RetryRevocationsReport = { pending: 0, revoked: 0, failed: 0, unreadable: 0 };
  let after: string | undefined;
  for (;;) {
    const page = await ledger.pending(after, options.pageSize);
    for (const { userId, refreshToken } of page) {
      report.pending += 1;
      let token: string;
      try {
        token = sealer.open(refreshToken, Sealer.context(userId, REFRESH_TOKEN_FIELD));
      } catch (err: unknown) {
        report.unreadable += 1;
        logger.error({ event: 'revocation_unreadable', userId, code: err instanceof BrokerError ? err.code : 'unknown' }, 'a pending revocation cannot be sent: its refresh token does not open');
        continue;
      }
      try {
        await oauth.revoke(token, Deadline.in(options.callTimeoutMs));
        await ledger.settle(userId, true);
        report.revoked += 1;
      } catch (err: unknown) {
        report.failed += 1;
        await ledger.settle(userId, false).catch(() => undefined);
        logger.warn({ event: 'revocation_retry_failed', userId, code: err instanceof BrokerError ? err.code : 'unknown' }, 'Google did not confirm a pending revocation');
      }
    }
    if (page.length < options.pageSize) return report;
    after = page[page.length - 1]?.userId;
  }
}
