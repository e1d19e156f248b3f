import { BrokerError, isBrokerError } from '../../domain/broker-error';

/**
 * Maps a failure of a Firestore operation: our own errors (from a grant
 * mutation or the document codec) pass unchanged; anything Firestore threw
 * becomes STORE_UNAVAILABLE, which callers may retry. The SDK has already
 * retried what it considers transient (UNAVAILABLE, ABORTED contention) by then.
 */
export function storeError(err: unknown): unknown {
  if (isBrokerError(err)) return err;
  return new BrokerError('STORE_UNAVAILABLE', 'the token store is unavailable', { cause: err });
}
