import { checkAddress, parseInvocation, wantsJson } from './args';
import { CliError } from './cli-error';
import { runCommand } from './commands';
import { connectionFor } from './connection';
import { devDirectory, readDevState } from './dev-state';
import { EXIT, type ExitCode } from './exit-codes';
import { errorJson, errorLines, type Outcome } from './output';
import { USAGE } from './usage';

/** Address of a broker started with default settings on this machine. */
export const DEFAULT_ADDRESS = '127.0.0.1:8080';

/** The parts of the process environment the CLI reads; main.ts fills it in. */
export interface CliEnvironment {
  /** TOKENBROKER_ADDRESS */
  address?: string;
  /** TOKENBROKER_DEV_DIR */
  devDir?: string;
  /** TOKENBROKER_ID_TOKEN: a ready caller ID token when no --id-token-* option is given. Never printed. */
  idToken?: string;
  /** Directory `.dev` is found under by default. */
  cwd: string;
}

/** Where the CLI writes. */
export interface CliStreams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/**
 * Runs one CLI invocation and resolves with the process exit code; never
 * rejects. Results go to stdout; errors to stderr, or with --json to stdout
 * as `{"error": {...}}`.
 */
export async function runCli(argv: readonly string[], env: CliEnvironment, io: CliStreams): Promise<ExitCode> {
  const json = wantsJson(argv);
  try {
    const invocation = parseInvocation(argv);
    if (invocation.kind === 'help') {
      (invocation.requested ? io.stdout : io.stderr).write(USAGE);
      return invocation.requested ? EXIT.OK : EXIT.USAGE;
    }
    const devState = readDevState(devDirectory(env.devDir, env.cwd));
    const outcome = await runCommand(invocation.command, {
      address: invocation.global.address ?? resolveAddress(env.address, devState?.address),
      timeoutMs: invocation.global.timeoutMs,
      connection: connectionFor(invocation.global.credentials, { envIdToken: env.idToken }),
      devOAuthUrl: devState?.oauthUrl,
      now: Date.now,
    });
    print(outcome, json, io);
    return outcome.exitCode;
  } catch (err: unknown) {
    const failure = err instanceof CliError ? err : unexpected(err);
    if (json) io.stdout.write(`${JSON.stringify(errorJson(failure))}\n`);
    else if (failure.code === 'USAGE') io.stderr.write(`tokenbroker: ${failure.message}\nRun with --help for usage.\n`);
    else io.stderr.write(`${errorLines(failure).join('\n')}\n`);
    return failure.exitCode;
  }
}

function resolveAddress(fromEnv: string | undefined, fromDevStack: string | undefined): string {
  if (fromEnv !== undefined && fromEnv !== '') return checkAddress(fromEnv, 'TOKENBROKER_ADDRESS');
  return fromDevStack ?? DEFAULT_ADDRESS;
}

function print(outcome: Outcome, json: boolean, io: CliStreams): void {
  io.stdout.write(json ? `${JSON.stringify(outcome.json)}\n` : `${outcome.lines.join('\n')}\n`);
}

// A bug of ours, not the user's mistake nor the service's answer. Only the first line:
// a stack trace helps nobody at the terminal.
function unexpected(err: unknown): CliError {
  const message = err instanceof Error ? (err.message.split('\n')[0] ?? err.name) : String(err);
  return new CliError(EXIT.SERVICE_ERROR, 'INTERNAL', `unexpected failure: ${message}`);
}
