import type { Firestore } from '@google-cloud/firestore';
import { createHash } from 'node:crypto';
import type { SharedTokenMutation, SharedTokenRecord, SharedTokenStore } from '../../domain/ports';
import type { FirestoreDocuments } from './firestore-documents';
import { sharedTokenFromDocument, sharedTokenToDocument } from './shared-token-document';
import { NO_METRICS, type Metrics } from '../../observability/metrics';
import { storeBudget, storeCall } from './store-call';
import { readDocument, updateDocument, type DocumentCodec } from './update-document';

/**
 * Shared access tokens and refresh leases in Firestore: one document per
 * user and scope set, ID `<user>_<SHA-256 of the scope key, hex>` (scope
 * lists are long and hold slashes, which document IDs cannot).
 */
export class FirestoreSharedTokenStore implements SharedTokenStore {
  /**
   * @param db a Firestore client (built in the composition root), for the query of a user's records
   * @param documents reads and writes single records
   * @param collection collection of shared token records
   * @param timeoutMs deadline of each operation, conflict retries included
   * @param metrics counts failed operations
   */
  constructor(
    private readonly db: Firestore,
    private readonly documents: FirestoreDocuments,
    private readonly collection: string,
    private readonly timeoutMs: number,
    private readonly metrics: Metrics = NO_METRICS,
  ) {}

  get(userId: string, scopeKey: string): Promise<SharedTokenRecord | undefined> {
    return readDocument(this.documents, this.name(userId, scopeKey), codec(userId, scopeKey), storeBudget(this.timeoutMs, this.metrics, 'shared_token_get'));
  }

  update(userId: string, scopeKey: string, mutate: SharedTokenMutation) {
    return updateDocument(this.documents, this.name(userId, scopeKey), codec(userId, scopeKey), storeBudget(this.timeoutMs, this.metrics, 'shared_token_update'), mutate);
  }

  deleteUser(userId: string): Promise<void> {
    return storeCall(storeBudget(this.timeoutMs, this.metrics, 'shared_token_delete'), async () => {
      const records = await this.db.collection(this.collection).where('user_id', '==', userId).select().get();
      const batch = this.db.batch();
      for (const doc of records.docs) batch.delete(doc.ref);
      await batch.commit();
    });
  }

  private name(userId: string, scopeKey: string): string {
    const scopeHash = createHash('sha256').update(scopeKey).digest('hex');
    return this.documents.name(this.collection, `${userId}_${scopeHash}`);
  }
}

function codec(userId: string, scopeKey: string): DocumentCodec<SharedTokenRecord> {
  return { decode: (data) => sharedTokenFromDocument(userId, scopeKey, data), encode: sharedTokenToDocument };
}
