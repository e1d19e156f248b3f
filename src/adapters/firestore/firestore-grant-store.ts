import { FieldPath, type Firestore } from '@google-cloud/firestore';
import type { GrantRecord } from '../../domain/grant';
import type { GrantMutation, GrantStore } from '../../domain/ports';
import { grantFromDocument, grantToDocument } from './grant-document';
import { storeCall } from './store-call';
import { readDocument, updateDocument, type DocumentCodec } from './update-document';

/**
 * Grants in Firestore: one document per user in one collection, the
 * document ID being the (already validated) Google account ID.
 */
export class FirestoreGrantStore implements GrantStore {
  /**
   * @param db a Firestore client (built in the composition root)
   * @param collection collection holding one document per user
   * @param timeoutMs deadline of each operation, conflict retries included
   */
  constructor(
    private readonly db: Firestore,
    private readonly collection: string,
    private readonly timeoutMs: number,
  ) {}

  get(userId: string): Promise<GrantRecord | undefined> {
    return readDocument(this.doc(userId), codec(userId), this.timeoutMs);
  }

  update(userId: string, mutate: GrantMutation): Promise<{ before: GrantRecord | undefined; after: GrantRecord | undefined }> {
    return updateDocument(this.doc(userId), codec(userId), this.timeoutMs, mutate);
  }

  listUserIds(after: string | undefined, limit: number): Promise<string[]> {
    return storeCall(this.timeoutMs, async () => {
      let query = this.db.collection(this.collection).orderBy(FieldPath.documentId()).select().limit(limit);
      if (after !== undefined) query = query.startAfter(after);
      return (await query.get()).docs.map((doc) => doc.id);
    });
  }

  delete(userId: string): Promise<void> {
    return storeCall(this.timeoutMs, async () => {
      await this.doc(userId).delete();
    });
  }

  private doc(userId: string) {
    return this.db.collection(this.collection).doc(userId);
  }
}

function codec(userId: string): DocumentCodec<GrantRecord> {
  return { decode: (data) => grantFromDocument(userId, data), encode: grantToDocument };
}
