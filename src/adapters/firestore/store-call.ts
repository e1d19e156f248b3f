import { BrokerError, isBrokerError } from '../../domain/broker-error';

/**
 * Runs one Firestore operation with a deadline, and maps its failure: our
 * own errors (from a grant mutation or the document codec) pass unchanged;
 * anything Firestore threw, or the deadline passing, becomes
 * STORE_UNAVAILABLE, which callers may retry.
 *
 * The deadline is ours because the SDK's is minutes: with Firestore
 * unreachable a get fails after ~40 s and a transaction after ~3.5 min (its
 * retries of UNAVAILABLE), far past any caller's deadline. An operation cut
 * here may still complete later: grant mutations re-read in their
 * transaction, so a late one still applies to the current state.
 */
export async function storeCall<T>(timeoutMs: number, op: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new BrokerError('STORE_UNAVAILABLE', 'the token store did not answer in time', { cause: new Error(`no answer within ${timeoutMs} ms`) })),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([op(), deadline]);
  } catch (err: unknown) {
    if (isBrokerError(err)) throw err;
    throw new BrokerError('STORE_UNAVAILABLE', 'the token store is unavailable', { cause: err });
  } finally {
    clearTimeout(timer);
  }
}
