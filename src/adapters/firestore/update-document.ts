import { FieldValue, type DocumentData, type DocumentReference, type Timestamp } from '@google-cloud/firestore';
import { storeCall, type StoreCallBudget } from './store-call';

/** One document write that goes into another's commit: `data` replaces the document at `ref`. */
export interface DocumentWrite {
  ref: DocumentReference;
  data: DocumentData;
}

/** How one kind of record is stored in a document. */
export interface DocumentCodec<T> {
  /** The record in an existing document (undefined: treat as absent). */
  decode(data: DocumentData): T | undefined;
  encode(record: T): DocumentData;
}

/**
 * Reads one document and writes what `mutate` makes of its record, atomically,
 * within `budget` (see storeCall): an optimistic compare-and-set, the write conditional on
 * the document being unchanged since the read (or still absent), retried on
 * conflict with `mutate` run again on fresh data, so it must be pure.
 * Returning undefined writes nothing. When it writes, `alongside` may name one
 * more document to set in the same atomic commit (from the record before).
 *
 * Preconditions rather than transactions: a transaction locks the document
 * for its whole read-decide-write span, and replicas racing for one refresh
 * lease then queue behind each other's locks (seconds on the emulator);
 * a failed precondition costs one re-read.
 */
export function updateDocument<T>(
  ref: DocumentReference,
  codec: DocumentCodec<T>,
  budget: number | StoreCallBudget,
  mutate: (current: T | undefined) => T | undefined,
  alongside?: (before: T | undefined) => DocumentWrite | undefined,
): Promise<{ before: T | undefined; after: T | undefined; wroteAlongside: boolean }> {
  return storeCall(budget, async () => {
    for (;;) {
      const snapshot = await ref.get();
      const data = snapshot.data();
      const before = data === undefined ? undefined : codec.decode(data);
      const after = mutate(before);
      if (after === undefined) return { before, after: before, wroteAlongside: false };
      const next = codec.encode(after);
      const batch = ref.firestore.batch();
      if (data === undefined) {
        batch.create(ref, next);
      } else {
        // update() replaces each field it names; fields the record no
        // longer has are deleted explicitly.
        for (const field of Object.keys(data)) if (!(field in next)) next[field] = FieldValue.delete();
        batch.update(ref, next, { lastUpdateTime: snapshot.updateTime as Timestamp });
      }
      const extra = alongside?.(before);
      if (extra) batch.set(extra.ref, extra.data);
      try {
        await batch.commit();
        return { before, after, wroteAlongside: extra !== undefined };
      } catch (err: unknown) {
        if (!isWriteConflict(err)) throw err;
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 20));
      }
    }
  });
}

/** A write lost the race: the document changed (FAILED_PRECONDITION) or appeared (ALREADY_EXISTS) since the read. */
export function isWriteConflict(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === GRPC_FAILED_PRECONDITION || code === GRPC_ALREADY_EXISTS;
}

const GRPC_ALREADY_EXISTS = 6;
const GRPC_FAILED_PRECONDITION = 9;

/** Reads one document's record within `budget` (see storeCall). */
export function readDocument<T>(ref: DocumentReference, codec: DocumentCodec<T>, budget: number | StoreCallBudget): Promise<T | undefined> {
  return storeCall(budget, async () => {
    const data = (await ref.get()).data();
    return data === undefined ? undefined : codec.decode(data);
  });
}
