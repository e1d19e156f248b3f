import { runResealGrants, runRetryRevocations, startApp } from './app';
import { ConfigError, loadConfig } from './config/config';

const USAGE = `usage: node dist/main.js                      serve gRPC (the default)
       node dist/main.js rotate-keys [--start-after USER_ID] [--page-size N]
                                             seal every stored grant again under the keyset's primary key
       node dist/main.js retry-revocations    tell Google the revocations RevokeUser could not get confirmed`;

/**
 * Process entry point: the only place that reads process.env. Without
 * arguments it serves and stops gracefully on SIGTERM (Kubernetes, Cloud
 * Run) or SIGINT; `rotate-keys` and `retry-revocations` run jobs with the
 * same configuration (a Kubernetes Job or Cloud Run job from the same image).
 */
async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  if (command === undefined) return serve();
  if (command === 'rotate-keys') return rotateKeys(args);
  if (command === 'retry-revocations' && args.length === 0) return retryRevocations();
  throw new ConfigError(`unknown command "${command}"\n${USAGE}`);
}

async function serve(): Promise<void> {
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
  let startAfter: string | undefined;
  let pageSize = 200;
  for (let i = 0; i < args.length; i += 2) {
    const [flag, value] = [args[i], args[i + 1]];
    if (flag === '--start-after' && value) startAfter = value;
    else if (flag === '--page-size' && value && /^\d{1,4}$/.test(value) && Number(value) > 0) pageSize = Number(value);
    else throw new ConfigError(`rotate-keys: bad argument "${flag ?? ''}"\n${USAGE}`);
  }
  const report = await runResealGrants(loadConfig(process.env), { startAfter, pageSize });
  process.stdout.write(`${JSON.stringify({ job: 'rotate-keys', ...report })}\n`);
  process.exit(report.unreadable + report.failed === 0 ? 0 : 1);
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
