import { runKeepAlive, runResealGrants, runRetryRevocations, startApp } from './app';
import { ConfigError, loadConfig } from './config/config';
import { turnOffPretenuring } from './runtime/v8-settings';

const USAGE = `usage: node dist/main.js                      serve gRPC (the default)
       node dist/main.js rotate-keys [--start-after USER_ID] [--page-size N]
                                             seal every stored grant again under the keyset's primary key
       node dist/main.js retry-revocations    tell Google the revocations RevokeUser could not get confirmed
       node dist/main.js keep-alive [--unused-days N] [--per-second N] [--start-after USER_ID]
                                             refresh every active grant unused for N days (default 150)`;

/**
 * Process entry point: the only place that reads process.env. Without
 * arguments it serves and stops gracefully on SIGTERM (Kubernetes, Cloud
 * Run) or SIGINT; `rotate-keys`, `retry-revocations` and `keep-alive` run jobs with the
 * same configuration (a Kubernetes Job or Cloud Run job from the same image).
 */
async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  if (command === undefined) return serve();
  if (command === 'rotate-keys') return rotateKeys(args);
  if (command === 'retry-revocations' && args.length === 0) return retryRevocations();
  if (command === 'keep-alive') return keepAlive(args);
  throw new ConfigError(`unknown command "${command}"\n${USAGE}`);
}

async function serve(): Promise<void> {
  turnOffPretenuring();
  const config = loadConfig(process.env);
  const app = await startApp(config);
  const onSignal = (signal: NodeJS.Signals) => {
    app.logger.info({ event: 'signal', signal }, 'shutting down');
    app.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}

/** Prints the job's report as one JSON line; exits 1 when some grant still needs an old key. */
async function rotateKeys(args: string[]): Promise<void> {
  const flags = parseFlags(args, ['--start-after', '--page-size']);
  const pageSize = flags.get('--page-size') ?? '200';
  if (!/^\d{1,4}$/.test(pageSize) || Number(pageSize) < 1) throw new ConfigError('rotate-keys: --page-size must be a whole number from 1 to 9999');
  const report = await runResealGrants(loadConfig(process.env), { startAfter: flags.get('--start-after'), pageSize: Number(pageSize) });
  process.stdout.write(`${JSON.stringify({ job: 'rotate-keys', ...report })}\n`);
  process.exit(report.unreadable + report.failed === 0 ? 0 : 1);
}

/** Prints the job's report as one JSON line; exits 1 when some due grant failed for a reason other than being dead. */
async function keepAlive(args: string[]): Promise<void> {
  const flags = parseFlags(args, ['--unused-days', '--per-second', '--start-after']);
  const number = (flag: string, fallback: number, max: number) => {
    const value = flags.get(flag);
    if (value === undefined) return fallback;
    if (!/^\d{1,6}$/.test(value) || Number(value) < 1 || Number(value) > max) throw new ConfigError(`keep-alive: ${flag} must be a whole number from 1 to ${max}`);
    return Number(value);
  };
  const report = await runKeepAlive(loadConfig(process.env), {
    unusedForMs: number('--unused-days', 150, 180) * 24 * 3600_000,
    refreshesPerSecond: number('--per-second', 10, 1000),
    pageSize: 200,
    startAfter: flags.get('--start-after'),
  });
  process.stdout.write(`${JSON.stringify({ job: 'keep-alive', ...report })}\n`);
  process.exit(report.failed === 0 ? 0 : 1);
}

/** Reads `--flag value` pairs, refusing any flag not in `known`. */
function parseFlags(args: string[], known: string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i += 2) {
    const [flag, value] = [args[i] ?? '', args[i + 1]];
    if (!known.includes(flag) || value === undefined) throw new ConfigError(`bad argument "${flag}"\n${USAGE}`);
    flags.set(flag, value);
  }
  return flags;
}

/** Prints the job's report as one JSON line; exits 1 while some revocation is still not confirmed. */
async function retryRevocations(): Promise<void> {
  const report = await runRetryRevocations(loadConfig(process.env));
  process.stdout.write(`${JSON.stringify({ job: 'retry-revocations', ...report })}\n`);
  process.exit(report.failed + report.unreadable === 0 ? 0 : 1);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  // Start-up errors are ours (ConfigError, secret and listen failures) and
  // name the bad setting; they hold no secret values.
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`${JSON.stringify({ severity: err instanceof ConfigError ? 'CRITICAL' : 'ERROR', message: `TokenBroker failed: ${message}` })}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
