import { Timestamp, type DocumentData, type Firestore } from '@google-cloud/firestore';
import type { Clock } from '../../domain/clock';
import type { ExchangeLedger, ExchangeRecord } from '../../domain/ports';
import { storeCall } from './store-call';

/**
 * The exchange ledger in Firestore: one small document per recent code,
 * ID = SHA-256 of the code (hex), fields `state`, `user_id`, `created`,
 * `expires_at`. Expired documents are ignored on read; a Firestore TTL
 * policy on `expires_at` deletes them (see the README).
 */
export class FirestoreExchangeLedger implements ExchangeLedger {
  constructor(
    private readonly db: Firestore,
    private readonly collection: string,
    private readonly clock: Clock,
    /** Deadline of each operation. */
    private readonly timeoutMs: number,
  ) {}

  async claim(codeHash: string, pendingUntil: number): Promise<ExchangeRecord | undefined> {
    const ref = this.doc(codeHash);
    return storeCall(this.timeoutMs, () =>
      this.db.runTransaction(async (tx) => {
        const live = this.live((await tx.get(ref)).data());
        if (live) return live;
        tx.set(ref, { state: 'PENDING', expires_at: Timestamp.fromMillis(pendingUntil) });
        return undefined;
      }),
    );
  }

  async complete(codeHash: string, outcome: { userId: string; created: boolean }, until: number): Promise<void> {
    await storeCall(this.timeoutMs, () =>
      this.doc(codeHash).set({ state: 'DONE', user_id: outcome.userId, created: outcome.created, expires_at: Timestamp.fromMillis(until) }),
    );
  }

  async release(codeHash: string): Promise<void> {
    await storeCall(this.timeoutMs, () => this.doc(codeHash).delete());
  }

  async get(codeHash: string): Promise<ExchangeRecord | undefined> {
    return storeCall(this.timeoutMs, async () => this.live((await this.doc(codeHash).get()).data()));
  }

  private doc(codeHash: string) {
    return this.db.collection(this.collection).doc(codeHash);
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
