import { Metadata, status, type StatusObject } from '@grpc/grpc-js';
import { BrokerError, type BrokerErrorCode } from '../domain/broker-error';
import { ErrorInfo } from '../gen/google/rpc/error_details';
import { Status } from '../gen/google/rpc/status';

/** ErrorInfo.domain of every error this service sends. */
export const ERROR_DOMAIN = 'tokenbroker.v1';

/**
 * The gRPC status of each domain error. The one place errors become codes:
 * - the caller's input is wrong -> INVALID_ARGUMENT;
 * - the request is fine but the grant's state forbids it (needs consent,
 *   dead refresh token, scope not granted) -> FAILED_PRECONDITION, because
 *   retrying cannot help until the user signs in again;
 * - Google or Firestore failing -> UNAVAILABLE, which callers may retry;
 * - Google rejecting our own client credentials -> INTERNAL: an operator
 *   must fix the deployment, the caller can do nothing;
 * - a stored ciphertext that will not open -> DATA_LOSS;
 * - no or a bad caller credential -> UNAUTHENTICATED; a known caller
 *   the policy does not allow this RPC or these scopes -> PERMISSION_DENIED;
 * - the call's time budget spent -> DEADLINE_EXCEEDED (work begun goes on,
 *   so a retry usually finds its result).
 */
const STATUS_OF: Record<BrokerErrorCode, status> = {
  INVALID_REQUEST: status.INVALID_ARGUMENT,
  INVALID_AUTH_CODE: status.INVALID_ARGUMENT,
  INVALID_ID_TOKEN: status.INVALID_ARGUMENT,
  CONSENT_REQUIRED: status.FAILED_PRECONDITION,
  USER_NOT_FOUND: status.NOT_FOUND,
  REAUTH_REQUIRED: status.FAILED_PRECONDITION,
  SCOPE_NOT_GRANTED: status.FAILED_PRECONDITION,
  UPSTREAM_UNAVAILABLE: status.UNAVAILABLE,
  OAUTH_CLIENT_REJECTED: status.INTERNAL,
  STORE_UNAVAILABLE: status.UNAVAILABLE,
  STORED_DATA_UNREADABLE: status.DATA_LOSS,
  DEADLINE_EXCEEDED: status.DEADLINE_EXCEEDED,
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  PERMISSION_DENIED: status.PERMISSION_DENIED,
};

/**
 * Builds the status sent for `err`: our errors with their code, message and
 * a google.rpc.ErrorInfo in `grpc-status-details-bin`; anything else as
 * INTERNAL with a generic message (its details go to the log only).
 */
export function toStatus(err: unknown): Partial<StatusObject> & { code: status } {
  if (!(err instanceof BrokerError)) {
    return { code: status.INTERNAL, details: 'internal error', metadata: new Metadata() };
  }
  const code = STATUS_OF[err.code];
  const info = ErrorInfo.encode({ reason: err.code, domain: ERROR_DOMAIN, metadata: err.metadata }).finish();
  const details = Status.encode({
    code,
    message: err.message,
    details: [{ typeUrl: 'type.googleapis.com/google.rpc.ErrorInfo', value: Buffer.from(info) }],
  }).finish();
  const metadata = new Metadata();
  metadata.set('grpc-status-details-bin', Buffer.from(details));
  return { code, details: err.message, metadata };
}
