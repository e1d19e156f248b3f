import { status, type ServiceError } from '@grpc/grpc-js';
import { errorInfoOf, isServiceError } from '../client/error-info';
import type { ErrorInfo } from '../gen/google/rpc/error_details';
import { CliError } from './cli-error';
import { EXIT } from './exit-codes';

/**
 * Turns what a gRPC call threw into the CliError the user sees. Transport
 * failures (UNAVAILABLE with no ErrorInfo, or the deadline passing) exit 3;
 * an answer from the service exits 1 with its code, reason and message.
 * Anything that is not a ServiceError is returned unchanged.
 */
export function fromGrpcError(err: unknown, address: string, timeoutMs: number): unknown {
  if (!isServiceError(err)) return err;
  const info = safeErrorInfo(err);
  if (err.code === status.DEADLINE_EXCEEDED) {
    return new CliError(EXIT.UNREACHABLE, 'DEADLINE_EXCEEDED', `no answer from ${address} within ${timeoutMs / 1000} s`);
  }
  if (err.code === status.UNAVAILABLE && info === undefined) {
    return new CliError(
      EXIT.UNREACHABLE,
      'UNAVAILABLE',
      `cannot reach TokenBroker at ${address} (${transportCause(err.details)}). Is it running? Start a local one with npm run dev`,
    );
  }
  const metadata = info && Object.keys(info.metadata).length > 0 ? info.metadata : undefined;
  return new CliError(EXIT.SERVICE_ERROR, status[err.code] ?? `CODE_${err.code}`, err.details, info?.reason, metadata);
}

// Details that do not decode (not TokenBroker at that address?) are treated as absent.
function safeErrorInfo(err: ServiceError): ErrorInfo | undefined {
  try {
    return errorInfoOf(err);
  } catch {
    return undefined;
  }
}

/** The gist of grpc-js' connection failure text: the errno (ECONNREFUSED) when it names one. */
function transportCause(details: string): string {
  return /\bE[A-Z]{3,}\b/.exec(details)?.[0] ?? details.replace(/\s*Resolution note:\s*$/, '');
}
