import type { ServiceError } from '@grpc/grpc-js';
import type { BrokerErrorCode } from '../domain/broker-error';
import { ErrorInfo } from '../gen/google/rpc/error_details';
import { Status } from '../gen/google/rpc/status';

const ERROR_INFO_TYPE = 'type.googleapis.com/google.rpc.ErrorInfo';

/**
 * Reads the google.rpc.ErrorInfo TokenBroker attaches to its errors
 * (`grpc-status-details-bin`). Undefined when the error carries none, for
 * example a transport failure.
 */
export function errorInfoOf(err: ServiceError): ErrorInfo | undefined {
  const raw = err.metadata?.get('grpc-status-details-bin')[0];
  if (!raw || typeof raw === 'string') return undefined;
  const detail = Status.decode(raw).details.find((d) => d.typeUrl === ERROR_INFO_TYPE);
  return detail ? ErrorInfo.decode(detail.value) : undefined;
}

/** The reasons TokenBroker errors carry (ErrorInfo.reason); see the README's error table. */
export type TokenBrokerReason = BrokerErrorCode;

/**
 * The TokenBroker reason of a failed call, for branching (`CONSENT_REQUIRED`:
 * sign in again with consent; `REAUTH_REQUIRED`; `SCOPE_NOT_GRANTED`, whose
 * `missingScopes` metadata lists what to ask for). Undefined for errors
 * that did not come from TokenBroker (transport failures).
 */
export function reasonOf(err: unknown): TokenBrokerReason | undefined {
  if (!isServiceError(err)) return undefined;
  const info = errorInfoOf(err);
  return info?.domain === 'tokenbroker.v1' ? (info.reason as TokenBrokerReason) : undefined;
}

/** True when `err` looks like a gRPC ServiceError (has a numeric code and metadata). */
export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'number' && 'metadata' in err;
}
