import { BrokerError } from './broker-error';

/**
 * Google account IDs (`sub`) are decimal strings of at most 255 characters.
 * Anything else is refused before any I/O; as the ID is also the Firestore
 * document ID, this is what keeps a caller from naming another path.
 */
const USER_ID = /^[0-9]{1,255}$/;

/** Returns `userId` when it is a well-formed Google account ID, else throws INVALID_REQUEST. */
export function checkUserId(userId: string): string {
  if (!USER_ID.test(userId)) {
    throw new BrokerError('INVALID_REQUEST', 'user_id must be a Google account ID: 1 to 255 decimal digits', {
      metadata: { field: 'user_id' },
    });
  }
  return userId;
}
