import { FieldPath, type Firestore } from '@google-cloud/firestore';
import type { GrantRecord } from '../../domain/grant';
import type { ExchangeCompletion, GrantMutation, GrantStore, GrantUpdate, ListedGrant } from '../../domain/ports';
import type { FirestoreDocuments } from './firestore-documents';
import type { FirestoreExchangeLedger } from './firestore-exchange-ledger';
import { grantFromDocument, grantToDocument } from './grant-document';
import { NO_METRICS, type Metrics } from '../../observability/metrics';
import { storeBudget, storeCall } from './store-call';
import { readDocument, updateDocument, type DocumentCodec } from './update-document';

/**
 * Grants in Firestore: one document per user in one collection, the
 * document ID being the (already validated) Google account ID.
 */
export class FirestoreGrantStore implements GrantStore {
  /**
   * @param db a Firestore client (built in the composition root), for the queries
   * @param documents reads and writes single grants
   * @param collection collection holding one document per user
   * @param timeoutMs deadline of each operation, conflict retries included
   * @param metrics counts failed operations
   * @param exchanges the exchange ledger in the same database, whose DONE
   *   records {@link update} then commits with their grants
   */
  constructor(
    private readonly db: Firestore,
    private readonly documents: FirestoreDocuments,
    private readonly collection: string,
    private readonly timeoutMs: number,
    private readonly metrics: Metrics = NO_METRICS,
    private readonly exchanges?: FirestoreExchangeLedger,
  ) {}

  get(userId: string): Promise<GrantRecord | undefined> {
    return readDocument(this.documents, this.name(userId), codec(userId), storeBudget(this.timeoutMs, this.metrics, 'grant_get'));
  }

  async update(userId: string, mutate: GrantMutation, completion?: ExchangeCompletion): Promise<GrantUpdate> {
    const { exchanges } = this;
    const alongside =
      completion && exchanges
        ? (before: GrantRecord | undefined) => exchanges.completionWrite(completion.codeHash, { userId, created: before === undefined }, completion.until)
        : undefined;
    const { before, after, wroteAlongside } = await updateDocument(this.documents, this.name(userId), codec(userId), storeBudget(this.timeoutMs, this.metrics, 'grant_update'), mutate, alongside);
    return { before, after, completed: wroteAlongside };
  }

  listUserIds(after: string | undefined, limit: number): Promise<string[]> {
    return storeCall(storeBudget(this.timeoutMs, this.metrics, 'grant_list'), async () => {
      let query = this.db.collection(this.collection).orderBy(FieldPath.documentId()).select().limit(limit);
      if (after !== undefined) query = query.startAfter(after);
      return (await query.get()).docs.map((doc) => doc.id);
    });
  }

  listGrants(after: string | undefined, limit: number): Promise<ListedGrant[]> {
    return storeCall(storeBudget(this.timeoutMs, this.metrics, 'grant_list'), async () => {
      let query = this.db.collection(this.collection).orderBy(FieldPath.documentId()).limit(limit);
      if (after !== undefined) query = query.startAfter(after);
      return (await query.get()).docs.map((doc): ListedGrant => {
        try {
          return { userId: doc.id, grant: grantFromDocument(doc.id, doc.data()) };
        } catch (err: unknown) {
          return { userId: doc.id, error: err };
        }
      });
    });
  }

  delete(userId: string): Promise<void> {
    return storeCall(storeBudget(this.timeoutMs, this.metrics, 'grant_delete'), (remainingMs) => this.documents.delete(this.name(userId), remainingMs()));
  }

  findByRefreshTokenHash(hash: string): Promise<string[]> {
    // An equality filter on one field needs no composite index; a hash
    // collision is not expected, so a handful of results is plenty.
    return storeCall(storeBudget(this.timeoutMs, this.metrics, 'grant_find_by_hash'), async () => {
      const query = this.db.collection(this.collection).where('refresh_token_hash', '==', hash).select().limit(5);
      return (await query.get()).docs.map((doc) => doc.id);
    });
  }

  private name(userId: string): string {
    return this.documents.name(this.collection, userId);
  }
}

function codec(userId: string): DocumentCodec<GrantRecord> {
  return { decode: (data) => grantFromDocument(userId, data), encode: grantToDocument };
}
