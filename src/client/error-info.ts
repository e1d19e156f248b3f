import type { ServiceError } from '@grpc/grpc-js';
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

/** True when `err` looks like a gRPC ServiceError (has a numeric code and metadata). */
export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'number' && 'metadata' in err;
}
