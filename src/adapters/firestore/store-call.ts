import { BrokerError, isBrokerError } from '../../domain/broker-error';
import type { FirestoreOperation, Metrics } from '../../observability/metrics';

/** A store call's deadline, and where its failure is counted: the operation's name and the metrics it goes to. */
export interface StoreCallBudget {
  timeoutMs: number;
  operation: FirestoreOperation;
  metrics: Metrics;
}

/** The budget of one operation of a store built with `timeoutMs` and `metrics`. */
export function storeBudget(timeoutMs: number, metrics: Metrics, operation: FirestoreOperation): StoreCallBudget {
  return { timeoutMs, operation, metrics };
}

/**
 * Runs one Firestore operation with a deadline, and maps its failure: our
 * own errors (from a grant mutation or the document codec) pass unchanged;
 * anything Firestore threw, or the deadline passing, becomes
 * STORE_UNAVAILABLE, which callers may retry.
 *
 * The deadline is ours because the SDK's is minutes: with Firestore
 * unreachable a get fails after ~40 s and a transaction after ~3.5 min (its
 * retries of UNAVAILABLE), far past any caller's deadline. `op` gets the
 * time left of the deadline, in ms (at least 1), and single-document calls
 * give it to their RPCs, which then end with it. A call through the
 * high-level client cut here may still complete later; a conditional write
 * applies only to the state it read.
 *
 * `budget` is the deadline in ms, or a {@link StoreCallBudget}: then the
 * call is timed as its operation, whatever its outcome, and every
 * STORE_UNAVAILABLE is counted as a Firestore error of its operation
 * (errors of our own making are not Firestore's, and are not counted).
 */
export async function storeCall<T>(budget: number | StoreCallBudget, op: (remainingMs: () => number) => Promise<T>): Promise<T> {
  const timeoutMs = typeof budget === 'number' ? budget : budget.timeoutMs;
  const started = performance.now();
  const remainingMs = () => Math.max(1, Math.ceil(started + timeoutMs - performance.now()));
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new BrokerError('STORE_UNAVAILABLE', 'the token store did not answer in time', { cause: new Error(`no answer within ${timeoutMs} ms`) })),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([op(remainingMs), deadline]);
  } catch (err: unknown) {
    const failure = isBrokerError(err) ? err : new BrokerError('STORE_UNAVAILABLE', 'the token store is unavailable', { cause: err });
    if (typeof budget !== 'number' && isBrokerError(failure, 'STORE_UNAVAILABLE')) budget.metrics.firestoreError(budget.operation);
    throw failure;
  } finally {
    clearTimeout(timer);
    if (typeof budget !== 'number') budget.metrics.firestoreCall(budget.operation, (performance.now() - started) / 1000);
  }
}
