import { EXIT, type ExitCode } from './exit-codes';

/**
 * A failure the CLI reports to its user and turns into an exit code. The
 * message is shown as is, so it must never hold a code, token or secret.
 */
export class CliError extends Error {
  override readonly name = 'CliError';

  /**
   * @param exitCode what the process exits with
   * @param code a gRPC status name ('NOT_FOUND'), or 'USAGE' for a bad command line
   * @param message for people; never a credential
   * @param reason the google.rpc.ErrorInfo reason, when the service sent one
   * @param metadata the ErrorInfo metadata, when the service sent one
   */
  constructor(
    readonly exitCode: ExitCode,
    readonly code: string,
    message: string,
    readonly reason?: string,
    readonly metadata?: Record<string, string>,
  ) {
    super(message);
  }
}

/** A command-line mistake: exit code 2. */
export function usageError(message: string): CliError {
  return new CliError(EXIT.USAGE, 'USAGE', message);
}
