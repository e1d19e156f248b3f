import { Firestore, type Settings } from '@google-cloud/firestore';
import { SecretManagerServiceClient } from '@google-cloud/secret-manager';
import { credentials } from '@grpc/grpc-js';
import { FirestoreExchangeLedger } from './adapters/firestore/firestore-exchange-ledger';
import { FirestoreGrantStore } from './adapters/firestore/firestore-grant-store';
import { GoogleOAuthClient } from './adapters/google/google-oauth-client';
import { parseOAuthClientJson } from './adapters/secrets/oauth-client-secret';
import { SecretManagerSource } from './adapters/secrets/secret-manager-source';
import type { Config } from './config/config';
import { parseKeyset } from './crypto/keyset';
import { Sealer } from './crypto/sealer';
import { systemClock, type Clock } from './domain/clock';
import { TokenBroker } from './domain/token-broker';
import { createLogger, type Logger } from './observability/logger';
import { createGrpcServer, listen, SERVICE_NAME, shutdown } from './transport/grpc-server';

/** Things tests (and only tests) replace. */
export interface AppOverrides {
  clock?: Clock;
  /** Where log lines go (stdout by default). */
  logDestination?: NodeJS.WritableStream;
}

/** A started service. */
export interface RunningApp {
  /** The bound gRPC port. */
  port: number;
  broker: TokenBroker;
  logger: Logger;
  /** Stops gracefully: health NOT_SERVING, drain in-flight calls up to the grace period (then cut them with UNAVAILABLE), close clients. */
  stop(): Promise<void>;
}

/**
 * The composition root: builds every client from `config`, reads the
 * secrets, wires the domain and starts serving. main.ts calls it with the
 * environment's config; tests call it with theirs.
 */
export async function startApp(config: Config, overrides: AppOverrides = {}): Promise<RunningApp> {
  const clock = overrides.clock ?? systemClock;
  const logger = createLogger(config.logLevel, overrides.logDestination);

  const { oauthClient, keyset } = await readSecrets(config);
  const firestore = new Firestore(firestoreSettings(config));
  const broker = new TokenBroker(
    {
      store: new FirestoreGrantStore(firestore, config.firestore.collection, config.firestore.timeoutMs),
      exchanges: new FirestoreExchangeLedger(firestore, `${config.firestore.collection}_code_exchanges`, clock, config.firestore.timeoutMs),
      oauth: new GoogleOAuthClient({
        clientId: oauthClient.clientId,
        clientSecret: oauthClient.clientSecret,
        endpoints: config.google,
        timeoutMs: config.google.timeoutMs,
        retries: config.google.retries,
        backoffMs: config.google.backoffMs,
        breakerFailures: config.google.breakerFailures,
        breakerOpenMs: config.google.breakerOpenMs,
        clock,
      }),
      sealer: new Sealer(keyset),
      clock,
      logger,
    },
    { allowedAppClientIds: config.allowedAppClientIds, callTimeoutMs: config.callTimeoutMs, ...config.tokens },
  );

  const grpc = createGrpcServer(broker, logger, config.callTimeoutMs);
  const { server, health } = grpc;
  let port: number;
  try {
    port = await listen(server, config.host, config.port);
  } catch (err: unknown) {
    await firestore.terminate();
    throw err;
  }
  health.setStatus('', 'SERVING');
  health.setStatus(SERVICE_NAME, 'SERVING');
  logger.info({ event: 'started', port, project: config.projectId }, 'TokenBroker serving');

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      const started = Date.now();
      const cut = await shutdown(grpc, config.shutdownGraceMs);
      await closeWithin(firestore.terminate(), config.firestore.timeoutMs);
      logger.info({ event: 'stopped', drainMs: Date.now() - started, callsCut: cut }, 'TokenBroker stopped');
    })();
    return stopping;
  };
  return { port, broker, logger, stop };
}

/** Reads the OAuth client and the keyset, in parallel, with bounded time. */
async function readSecrets(config: Config) {
  const needsSecretManager = !config.secrets.oauthClientRef.startsWith('file:') || !config.secrets.keysetRef.startsWith('file:');
  const client = needsSecretManager ? new SecretManagerServiceClient(secretManagerOptions(config)) : undefined;
  const source = new SecretManagerSource(client, { timeoutMs: config.secrets.timeoutMs });
  try {
    const [clientJson, keysetJson] = await Promise.all([
      source.read(config.secrets.oauthClientRef),
      source.read(config.secrets.keysetRef),
    ]);
    return {
      oauthClient: parseOAuthClientJson(clientJson.toString('utf8'), 'TOKENBROKER_OAUTH_CLIENT_SECRET'),
      keyset: parseKeyset(keysetJson.toString('utf8'), 'TOKENBROKER_ENCRYPTION_KEYSET'),
    };
  } finally {
    await client?.close();
  }
}

function secretManagerOptions(config: Config) {
  const endpoint = config.secrets.secretManagerEndpoint;
  if (!endpoint) return {};
  const [host, port] = splitHostPort(endpoint);
  // A local plaintext endpoint (tests, dev): no TLS, no credentials lookup.
  return { apiEndpoint: host, port, sslCreds: credentials.createInsecure(), universeDomain: 'googleapis.com' };
}

function firestoreSettings(config: Config): Settings {
  const base: Settings = { projectId: config.projectId, databaseId: config.firestore.databaseId };
  const emulator = config.firestore.emulatorHost;
  if (!emulator) return base;
  const [host, port] = splitHostPort(emulator);
  // The emulator speaks plaintext and accepts the fixed "owner" token.
  return { ...base, host, port, ssl: false, customHeaders: { Authorization: 'Bearer owner' }, universeDomain: 'googleapis.com' };
}

/**
 * Waits for `closing` at most `ms`: during a store outage the Firestore
 * client's terminate() waits minutes for its retrying operations, and a
 * shutdown must not.
 */
async function closeWithin(closing: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closing.catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

function splitHostPort(hostPort: string): [string, number] {
  const i = hostPort.lastIndexOf(':');
  return [hostPort.slice(0, i), Number(hostPort.slice(i + 1))];
}
