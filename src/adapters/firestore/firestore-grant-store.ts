import type { DocumentData, Firestore } from '@google-cloud/firestore';
import type { GrantRecord } from '../../domain/grant';
import type { GrantMutation, GrantStore } from '../../domain/ports';
import { grantFromDocument, grantToDocument } from './grant-document';
import { storeCall } from './store-call';

/**
 * Grants in Firestore: one document per user in one collection, the
 * document ID being the (already validated) Google account ID.
 */
export class FirestoreGrantStore implements GrantStore {
  /**
   * @param db a Firestore client (built in the composition root)
   * @param collection collection holding one document per user
   * @param timeoutMs deadline of each operation, transaction retries included
   */
  constructor(
    private readonly db: Firestore,
    private readonly collection: string,
    private readonly timeoutMs: number,
  ) {}

  get(userId: string): Promise<GrantRecord | undefined> {
    return storeCall(this.timeoutMs, async () => {
      const snapshot = await this.doc(userId).get();
      return snapshot.exists ? grantFromDocument(userId, snapshot.data() as DocumentData) : undefined;
    });
  }

  update(userId: string, mutate: GrantMutation): Promise<{ before: GrantRecord | undefined; after: GrantRecord | undefined }> {
    const ref = this.doc(userId);
    return storeCall(this.timeoutMs, () =>
      // The SDK retries the transaction on contention (ABORTED), running the
      // mutation again on fresh data; the mutation is pure, so that is safe.
      this.db.runTransaction(async (tx) => {
        const snapshot = await tx.get(ref);
        const before = snapshot.exists ? grantFromDocument(userId, snapshot.data() as DocumentData) : undefined;
        const after = mutate(before);
        if (after === undefined) return { before, after: before };
        tx.set(ref, grantToDocument(after));
        return { before, after };
      }),
    );
  }

  private doc(userId: string) {
    return this.db.collection(this.collection).doc(userId);
  }
}
