import type { DocumentData } from '@google-cloud/firestore';
import { isWriteConflict, type DocumentWrite, type FirestoreDocuments } from './firestore-documents';
import { storeCall, type StoreCallBudget } from './store-call';

/** How one kind of record is stored in a document. */
export interface DocumentCodec<T> {
  /** The record in an existing document (undefined: treat as absent). */
  decode(data: DocumentData): T | undefined;
  encode(record: T): DocumentData;
}

/**
 * Reads document `name` and writes what `mutate` makes of its record,
 * atomically, within `budget` (see storeCall): an optimistic compare-and-set,
 * the write conditional on the document being unchanged since the read (or
 * still absent), retried on conflict with `mutate` run again on fresh data,
 * so it must be pure. Returning undefined writes nothing. The write replaces
 * the whole document. When it writes, `alongside` may name one more document
 * to set in the same atomic commit (from the record before).
 *
 * Preconditions rather than transactions: a transaction locks the document
 * for its whole read-decide-write span, and replicas racing for one refresh
 * lease then queue behind each other's locks (seconds on the emulator);
 * a failed precondition costs one re-read.
 */
export function updateDocument<T>(
  documents: FirestoreDocuments,
  name: string,
  codec: DocumentCodec<T>,
  budget: number | StoreCallBudget,
  mutate: (current: T | undefined) => T | undefined,
  alongside?: (before: T | undefined) => DocumentWrite | undefined,
): Promise<{ before: T | undefined; after: T | undefined; wroteAlongside: boolean }> {
  return storeCall(budget, async (remainingMs) => {
    for (;;) {
      const stored = await documents.get(name, remainingMs());
      const before = stored === undefined ? undefined : codec.decode(stored.data);
      const after = mutate(before);
      if (after === undefined) return { before, after: before, wroteAlongside: false };
      const writes: DocumentWrite[] = [{ name, data: codec.encode(after), precondition: stored === undefined ? 'absent' : stored.updateTime }];
      const extra = alongside?.(before);
      if (extra) writes.push(extra);
      try {
        await documents.commit(writes, remainingMs());
        return { before, after, wroteAlongside: extra !== undefined };
      } catch (err: unknown) {
        if (!isWriteConflict(err)) throw err;
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 20));
      }
    }
  });
}

/** Reads document `name`'s record within `budget` (see storeCall). */
export function readDocument<T>(documents: FirestoreDocuments, name: string, codec: DocumentCodec<T>, budget: number | StoreCallBudget): Promise<T | undefined> {
  return storeCall(budget, async (remainingMs) => {
    const stored = await documents.get(name, remainingMs());
    return stored === undefined ? undefined : codec.decode(stored.data);
  });
}
