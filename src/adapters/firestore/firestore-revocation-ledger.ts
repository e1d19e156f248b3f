import { FieldPath, FieldValue, Timestamp, type DocumentData, type Firestore } from '@google-cloud/firestore';
import type { SealedBox } from '../../crypto/sealed-box';
import type { Clock } from '../../domain/clock';
import type { PendingRevocation, RevocationLedger } from '../../domain/ports';
import { NO_METRICS, type Metrics } from '../../observability/metrics';
import { storeBudget, storeCall } from './store-call';

/** How long a settled revocation stays, for replicas to see it; a TTL policy on `delete_after` removes it. */
const SETTLED_KEEP_MS = 24 * 3600_000;
/** How long a pending revocation waits for the retry job before a TTL policy may remove it. */
const PENDING_KEEP_MS = 30 * 24 * 3600_000;

/**
 * The revocation ledger in Firestore: one document per revoked user (ID =
 * user ID) with `revoked_at`, `delete_after`, `attempts`, `awaiting_google`
 * and, while Google has not confirmed, `pending` (the refresh token's
 * sealed box, as stored in the grant). Replicas watch it with a snapshot
 * listener. {@link announceDrop} writes `drop-<user_id>` documents
 * (`kind: drop_tokens`) that the same listener reports.
 */
export class FirestoreRevocationLedger implements RevocationLedger {
  constructor(
    private readonly db: Firestore,
    private readonly collection: string,
    private readonly clock: Clock,
    private readonly timeoutMs: number,
    /** Counts failed operations. */
    private readonly metrics: Metrics = NO_METRICS,
  ) {}

  record(userId: string, pending?: SealedBox): Promise<void> {
    const now = this.clock.now();
    const doc: DocumentData = {
      user_id: userId,
      revoked_at: Timestamp.fromMillis(now),
      delete_after: Timestamp.fromMillis(now + (pending ? PENDING_KEEP_MS : SETTLED_KEEP_MS)),
      attempts: 0,
      awaiting_google: pending !== undefined,
    };
    if (pending) doc.pending = { key_id: pending.keyId, iv: pending.iv, ciphertext: pending.ciphertext };
    return storeCall(storeBudget(this.timeoutMs, this.metrics, 'revocation_record'), async () => {
      await this.db.collection(this.collection).doc(userId).set(doc);
    });
  }

  watch(onRevoked: (userId: string) => void, onError: (err: unknown) => void): () => void {
    // Only what is recorded from about now on: older revocations were
    // applied before this replica could have cached anything for the user.
    const since = Timestamp.fromMillis(this.clock.now() - 60_000);
    return this.db
      .collection(this.collection)
      .where('revoked_at', '>=', since)
      .onSnapshot(
        (snapshot) => {
          for (const change of snapshot.docChanges()) {
            const userId: unknown = change.doc.get('user_id');
            if (change.type !== 'removed' && typeof userId === 'string') onRevoked(userId);
          }
        },
        (err) => onError(err),
      );
  }

  announceDrop(userId: string): Promise<void> {
    // A document of its own (never the user's revocation entry, which may
    // hold a pending token), never awaiting Google, so the retry job skips it.
    const now = this.clock.now();
    const doc: DocumentData = {
      user_id: userId,
      kind: 'drop_tokens',
      revoked_at: Timestamp.fromMillis(now),
      delete_after: Timestamp.fromMillis(now + SETTLED_KEEP_MS),
      awaiting_google: false,
    };
    return storeCall(storeBudget(this.timeoutMs, this.metrics, 'revocation_announce_drop'), async () => {
      await this.db.collection(this.collection).doc(`drop-${userId}`).set(doc);
    });
  }

  pending(after: string | undefined, limit: number): Promise<PendingRevocation[]> {
    return storeCall(storeBudget(this.timeoutMs, this.metrics, 'revocation_pending'), async () => {
      let query = this.db.collection(this.collection).where('awaiting_google', '==', true).orderBy(FieldPath.documentId()).limit(limit);
      if (after !== undefined) query = query.startAfter(after);
      const found: PendingRevocation[] = [];
      for (const doc of (await query.get()).docs) {
        const box = doc.get('pending') as DocumentData | undefined;
        if (!box || typeof box.key_id !== 'string' || !Buffer.isBuffer(box.iv) || !Buffer.isBuffer(box.ciphertext)) continue;
        found.push({ userId: doc.id, refreshToken: { keyId: box.key_id, iv: box.iv, ciphertext: box.ciphertext }, attempts: Number(doc.get('attempts')) || 0 });
      }
      return found;
    });
  }

  settle(userId: string, done: boolean): Promise<void> {
    const ref = this.db.collection(this.collection).doc(userId);
    return storeCall(storeBudget(this.timeoutMs, this.metrics, 'revocation_settle'), async () => {
      if (done) {
        await ref.update({ pending: FieldValue.delete(), awaiting_google: false, delete_after: Timestamp.fromMillis(this.clock.now() + SETTLED_KEEP_MS) });
      } else {
        await ref.update({ attempts: FieldValue.increment(1) });
      }
    });
  }
}
