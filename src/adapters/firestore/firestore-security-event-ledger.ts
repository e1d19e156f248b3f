import { Timestamp, type Firestore } from '@google-cloud/firestore';
import { createHash } from 'node:crypto';
import type { Clock } from '../../domain/clock';
import type { SecurityEventLedger } from '../../domain/ports';
import { NO_METRICS, type Metrics } from '../../observability/metrics';
import { storeBudget, storeCall } from './store-call';

/** How long a processed token's `jti` is remembered; a TTL policy on `expire_at` deletes it after. */
export const SECURITY_EVENT_KEEP_MS = 30 * 24 * 3600_000;

const GRPC_ALREADY_EXISTS = 6;

/**
 * Processed Security Event Tokens in Firestore: one document per `jti`,
 * ID = SHA-256 of the jti (hex: any string Google sends makes a valid ID),
 * with `jti`, `issued_at`, `received_at`, `event_types` and `expire_at`.
 * Written with create(), so of two deliveries racing only one records it.
 */
export class FirestoreSecurityEventLedger implements SecurityEventLedger {
  constructor(
    private readonly db: Firestore,
    private readonly collection: string,
    private readonly clock: Clock,
    private readonly timeoutMs: number,
    /** Counts failed operations. */
    private readonly metrics: Metrics = NO_METRICS,
  ) {}

  seen(jti: string): Promise<boolean> {
    return storeCall(storeBudget(this.timeoutMs, this.metrics, 'security_event_seen'), async () => (await this.doc(jti).get()).exists);
  }

  record(jti: string, entry: { issuedAt: number; eventTypes: string[] }): Promise<boolean> {
    const now = this.clock.now();
    return storeCall(storeBudget(this.timeoutMs, this.metrics, 'security_event_record'), async () => {
      try {
        await this.doc(jti).create({
          jti,
          issued_at: Timestamp.fromMillis(entry.issuedAt),
          received_at: Timestamp.fromMillis(now),
          event_types: entry.eventTypes,
          expire_at: Timestamp.fromMillis(now + SECURITY_EVENT_KEEP_MS),
        });
        return true;
      } catch (err: unknown) {
        // ALREADY_EXISTS: another delivery of the same token recorded it first.
        if ((err as { code?: unknown } | null)?.code === GRPC_ALREADY_EXISTS) return false;
        throw err;
      }
    });
  }

  private doc(jti: string) {
    return this.db.collection(this.collection).doc(createHash('sha256').update(jti, 'utf8').digest('hex'));
  }
}
