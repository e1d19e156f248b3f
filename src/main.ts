import { startApp } from './app';
import { ConfigError, loadConfig } from './config/config';

/**
 * Process entry point: the only place that reads process.env. Starts the
 * service and stops it gracefully on SIGTERM (Kubernetes, Cloud Run) or SIGINT.
 */
async function main(): Promise<void> {
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

main().catch((err: unknown) => {
  // Start-up errors are ours (ConfigError, secret and listen failures) and
  // name the bad setting; they hold no secret values.
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`${JSON.stringify({ severity: err instanceof ConfigError ? 'CRITICAL' : 'ERROR', message: `TokenBroker failed to start: ${message}` })}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
