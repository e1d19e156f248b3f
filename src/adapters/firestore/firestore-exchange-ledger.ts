import { Timestamp, type DocumentData } from '@google-cloud/firestore';
import type { Clock } from '../../domain/clock';
import type { ExchangeLedger, ExchangeRecord } from '../../domain/ports';
import { NO_METRICS, type Metrics } from '../../observability/metrics';
import { GRPC_NOT_FOUND, isWriteConflict, type DocumentWrite, type FirestoreDocuments } from './firestore-documents';
import { storeBudget, storeCall } from './store-call';

/**
 * The exchange ledger in Firestore: one small document per recent code,
 * ID = SHA-256 of the code (hex), fields `state`, `user_id`, `created`,
 * `expires_at`. Expired documents are ignored on read; a Firestore TTL
 * policy on `expires_at` deletes them (see the README).
 */
export class FirestoreExchangeLedger implements ExchangeLedger {
  constructor(
    private readonly documents: FirestoreDocuments,
    private readonly collection: string,
    private readonly clock: Clock,
    /** Deadline of each operation. */
    private readonly timeoutMs: number,
    /** Counts failed operations. */
    private readonly metrics: Metrics = NO_METRICS,
  ) {}

  /**
   * One write in the usual case (a code not seen before): a create that
   * succeeds only if no document exists. Otherwise the document is read, and
   * an expired or malformed one is taken over with a write conditional on it
   * being unchanged since that read.
   */
  async claim(codeHash: string, pendingUntil: number): Promise<ExchangeRecord | undefined> {
    const name = this.name(codeHash);
    const pending = { state: 'PENDING', expires_at: Timestamp.fromMillis(pendingUntil) };
    return storeCall(storeBudget(this.timeoutMs, this.metrics, 'exchange_claim'), async (remainingMs) => {
      for (;;) {
        try {
          await this.documents.commit([{ name, data: pending, precondition: 'absent' }], remainingMs());
          return undefined;
        } catch (err: unknown) {
          if (!isWriteConflict(err)) throw err;
        }
        const stored = await this.documents.get(name, remainingMs());
        if (!stored) continue; // released since: create again
        const live = this.live(stored.data);
        if (live) return live;
        try {
          await this.documents.commit([{ name, data: pending, precondition: stored.updateTime }], remainingMs());
          return undefined;
        } catch (err: unknown) {
          // Another attempt took it, or it was released, since the read: look again.
          if (!isWriteConflict(err) && (err as { code?: unknown }).code !== GRPC_NOT_FOUND) throw err;
        }
      }
    });
  }

  async complete(codeHash: string, outcome: { userId: string; created: boolean }, until: number): Promise<void> {
    const write = this.completionWrite(codeHash, outcome, until);
    await storeCall(storeBudget(this.timeoutMs, this.metrics, 'exchange_complete'), (remainingMs) => this.documents.commit([write], remainingMs()));
  }

  /**
   * The DONE record {@link complete} writes, as a write for another commit:
   * {@link FirestoreGrantStore} commits it with the grant it belongs to.
   */
  completionWrite(codeHash: string, outcome: { userId: string; created: boolean }, until: number): DocumentWrite {
    return {
      name: this.name(codeHash),
      data: { state: 'DONE', user_id: outcome.userId, created: outcome.created, expires_at: Timestamp.fromMillis(until) },
    };
  }

  async release(codeHash: string): Promise<void> {
    await storeCall(storeBudget(this.timeoutMs, this.metrics, 'exchange_release'), (remainingMs) => this.documents.delete(this.name(codeHash), remainingMs()));
  }

  async get(codeHash: string): Promise<ExchangeRecord | undefined> {
    return storeCall(storeBudget(this.timeoutMs, this.metrics, 'exchange_get'), async (remainingMs) =>
      this.live((await this.documents.get(this.name(codeHash), remainingMs()))?.data),
    );
  }

  private name(codeHash: string): string {
    return this.documents.name(this.collection, codeHash);
  }

  /** The record in `data` unless missing, malformed or expired. */
  private live(data: DocumentData | undefined): ExchangeRecord | undefined {
    if (!data || !(data.expires_at instanceof Timestamp)) return undefined;
    const expiresAt = data.expires_at.toMillis();
    if (expiresAt <= this.clock.now()) return undefined;
    if (data.state === 'PENDING') return { state: 'PENDING', expiresAt };
    if (data.state === 'DONE' && typeof data.user_id === 'string' && typeof data.created === 'boolean') {
      return { state: 'DONE', userId: data.user_id, created: data.created, expiresAt };
    }
    return undefined;
  }
}
