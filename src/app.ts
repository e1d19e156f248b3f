import { Firestore, type Settings } from '@google-cloud/firestore';
import type { SecretManagerServiceClient } from '@google-cloud/secret-manager';
import { credentials, ServerCredentials } from '@grpc/grpc-js';
import type { Tracer } from '@opentelemetry/api';
import { OAuth2Client } from 'google-auth-library';
import { readFile } from 'node:fs/promises';
import { FirestoreDocuments } from './adapters/firestore/firestore-documents';
import { FirestoreExchangeLedger } from './adapters/firestore/firestore-exchange-ledger';
import { FirestoreGrantStore } from './adapters/firestore/firestore-grant-store';
import { FirestoreRevocationLedger } from './adapters/firestore/firestore-revocation-ledger';
import { FirestoreSecurityEventLedger } from './adapters/firestore/firestore-security-event-ledger';
import { FirestoreSharedTokenStore } from './adapters/firestore/firestore-shared-token-store';
import { GoogleCallerTokenVerifier } from './adapters/google/google-caller-token-verifier';
import { GoogleCerts } from './adapters/google/google-certs';
import { GoogleOAuthClient } from './adapters/google/google-oauth-client';
import { RiscReceiver } from './adapters/risc/risc-receiver';
import { RiscSigningKeys } from './adapters/risc/risc-signing-keys';
import { SecurityEventTokenVerifier } from './adapters/risc/security-event-token-verifier';
import { parseOAuthClientJson } from './adapters/secrets/oauth-client-secret';
import { SecretManagerSource } from './adapters/secrets/secret-manager-source';
import { EnforcedAccess, InsecureOpenAccess, type CallerAccess } from './auth/caller-access';
import { CallerPolicy, PolicyError } from './auth/caller-policy';
import { BearerTokenAuthenticator } from './auth/bearer-token-authenticator';
import { CertificateAuthenticator } from './auth/certificate-authenticator';
import { MeshAuthenticator } from './auth/mesh-authenticator';
import { ConfigError, type Config } from './config/config';
import { parseKeyset } from './crypto/keyset';
import { Sealer } from './crypto/sealer';
import { systemClock, type Clock } from './domain/clock';
import { keepGrantsAlive, type KeepAliveOptions, type KeepAliveReport } from './domain/keep-alive';
import { resealGrants, type ResealOptions, type ResealReport } from './domain/reseal-grants';
import { retryRevocations, type RetryRevocationsReport } from './domain/retry-revocations';
import { SecurityEventProcessor } from './domain/security-events';
import { TokenBroker } from './domain/token-broker';
import { describeError } from './observability/describe-error';
import { createLogger, type Logger } from './observability/logger';
import { NO_METRICS, type Metrics } from './observability/metrics';
import { MetricsServer } from './observability/metrics-server';
import type { PrometheusMetrics } from './observability/prometheus-metrics';
import { startTracing } from './observability/tracing';
import { createGrpcServer, healthOnlyServer, listen, SERVICE_NAME, shutdown } from './transport/grpc-server';
import { mutualTls, parseTlsMaterial } from './transport/tls';

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
  /** The bound health-only port, when TOKENBROKER_HEALTH_PORT is set. */
  healthPort?: number;
  /** The bound Cross-Account Protection receiver port, when TOKENBROKER_RISC_PORT is set. */
  riscPort?: number;
  /** The bound Prometheus metrics port, when TOKENBROKER_METRICS_PORT is set. */
  metricsPort?: number;
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
  const logger = createLogger(config.logLevel, overrides.logDestination, true);

  const policy = await readPolicy(config);
  const { oauthClient, keyset, tls } = await readSecrets(config);
  const firestore = openFirestore(config);
  // Metrics are recorded only when something serves them.
  const prometheus = config.metricsPort === undefined ? undefined : prometheusMetrics();
  const metrics = prometheus ?? NO_METRICS;
  const tracing = startTracing(config.tracing);
  const { broker, revocations, store } = buildBroker(config, firestore, oauthClient, new Sealer(keyset), clock, logger, metrics, tracing.tracer);

  const access = callerAccess(config, policy, clock, metrics);
  if (config.callers.mode === 'insecure-none') {
    logger.warn({ event: 'insecure_caller_auth' }, 'TOKENBROKER_CALLER_AUTH=insecure-none: ANY CALLER CAN GET ANY USER\'S TOKENS. Local development only.');
  }
  const grpc = createGrpcServer(broker, { logger, callTimeoutMs: config.callTimeoutMs, access, metrics, tracer: tracing.tracer, projectId: config.projectId });
  const { server, health } = grpc;
  let port: number;
  let healthPort: number | undefined;
  let risc: RiscReceiver | undefined;
  let metricsServer: MetricsServer | undefined;
  const healthServer = config.healthPort === undefined ? undefined : healthOnlyServer(health);
  try {
    port = await listen(server, config.host, config.port, tls ? mutualTls(tls) : ServerCredentials.createInsecure());
    // Kubelet's gRPC probes speak plaintext only: with mtls they need a port of their own.
    if (healthServer) healthPort = await listen(healthServer, config.host, config.healthPort ?? 0, ServerCredentials.createInsecure());
    if (config.risc.port !== undefined) risc = await startRiscReceiver(config, firestore.db, store, broker, oauthClient.clientId, clock, logger, metrics);
    if (prometheus) metricsServer = await MetricsServer.start(prometheus, config.host, config.metricsPort ?? 0, logger);
  } catch (err: unknown) {
    server.forceShutdown();
    healthServer?.forceShutdown();
    await risc?.close();
    await metricsServer?.close();
    await tracing.shutdown().catch(() => undefined);
    await closeFirestore(firestore);
    throw err;
  }
  // Revocations recorded by any replica drop this one's cached tokens.
  const unwatch = revocations.watch(
    (userId) => broker.forget(userId),
    (err) => logger.error({ event: 'revocation_watch_failed', error: describeError(err) }, 'lost the revocation feed; cached tokens of users revoked elsewhere may be served until it is back'),
  );
  health.setStatus('', 'SERVING');
  health.setStatus(SERVICE_NAME, 'SERVING');
  const riscPort = risc?.port;
  const metricsPort = metricsServer?.port;
  logger.info({ event: 'started', port, healthPort, riscPort, metricsPort, tracing: config.tracing.exporter, callerAuth: config.callers.mode, project: config.projectId }, 'TokenBroker serving');

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      const started = Date.now();
      const cut = await shutdown(grpc, config.shutdownGraceMs);
      await risc?.close();
      unwatch();
      healthServer?.forceShutdown();
      await metricsServer?.close();
      // Exports the spans still buffered, within bounds: a collector that is down must not hold up the exit.
      await closeWithin(tracing.shutdown(), 5000);
      await closeWithin(closeFirestore(firestore), config.firestore.timeoutMs);
      logger.info({ event: 'stopped', drainMs: Date.now() - started, callsCut: cut }, 'TokenBroker stopped');
    })();
    return stopping;
  };
  return { port, healthPort, riscPort, metricsPort, broker, logger, stop };
}

/**
 * The Cross-Account Protection receiver on its own port: Google's Security
 * Event Tokens for our server client or app clients, verified against the
 * RISC key set, de-duplicated in Firestore and applied to stored grants.
 */
async function startRiscReceiver(
  config: Config,
  firestore: Firestore,
  store: FirestoreGrantStore,
  broker: TokenBroker,
  serverClientId: string,
  clock: Clock,
  logger: Logger,
  metrics: Metrics,
): Promise<RiscReceiver> {
  const keys = new RiscSigningKeys({
    url: config.risc.jwksUrl,
    timeoutMs: config.google.timeoutMs,
    defaultMaxAgeMs: 5 * 60_000,
    maxMaxAgeMs: 24 * 3600_000,
    minRefetchIntervalMs: 30_000,
    clock,
  });
  const audiences = [serverClientId, ...config.allowedAppClientIds];
  const verifier = new SecurityEventTokenVerifier(keys, { issuer: config.risc.issuer, audiences, maxFutureSkewMs: 5 * 60_000, clock });
  const ledger = new FirestoreSecurityEventLedger(firestore, `${config.firestore.collection}_security_events`, clock, config.firestore.timeoutMs, metrics);
  const processor = new SecurityEventProcessor({ grants: store, ledger, tokens: broker, clock, logger, metrics }, config.risc.issuer);
  return RiscReceiver.start(config.host, config.risc.port ?? 0, { verifier, processor, logger }, { maxBodyBytes: 64 * 1024, requestTimeoutMs: 10_000 });
}

/** The domain and its adapters over one database's clients. */
function buildBroker(
  config: Config,
  firestore: FirestoreClients,
  oauthClient: { clientId: string; clientSecret: string },
  sealer: Sealer,
  clock: Clock,
  logger: Logger,
  metrics: Metrics = NO_METRICS,
  tracer?: Tracer,
) {
  const { db, documents } = firestore;
  const exchanges = new FirestoreExchangeLedger(documents, `${config.firestore.collection}_code_exchanges`, clock, config.firestore.timeoutMs, metrics);
  // The store commits each sign-in's grant and its ledger record together.
  const store = new FirestoreGrantStore(db, documents, config.firestore.collection, config.firestore.timeoutMs, metrics, exchanges);
  const revocations = revocationLedger(db, config, clock, metrics);
  const broker = new TokenBroker(
    {
      store,
      shared: new FirestoreSharedTokenStore(db, documents, `${config.firestore.collection}_access_tokens`, config.firestore.timeoutMs, metrics),
      exchanges,
      revocations,
      oauth: googleOAuthClient(config, oauthClient, clock, logger, metrics, tracer),
      sealer,
      clock,
      logger,
      metrics,
    },
    { allowedAppClientIds: config.allowedAppClientIds, callTimeoutMs: config.callTimeoutMs, ...config.tokens },
  );
  return { broker, store, revocations };
}

/**
 * The `keep-alive` job: refreshes every active grant unused for longer than
 * the limit, so Google does not expire it (see keepGrantsAlive).
 */
export async function runKeepAlive(config: Config, options: KeepAliveOptions, overrides: AppOverrides = {}): Promise<KeepAliveReport> {
  const clock = overrides.clock ?? systemClock;
  const logger = createLogger(config.logLevel, overrides.logDestination);
  const { oauthClient, keyset } = await readSecrets(config);
  const firestore = openFirestore(config);
  try {
    const { broker, store } = buildBroker(config, firestore, oauthClient, new Sealer(keyset), clock, logger);
    return await keepGrantsAlive(store, broker, clock, logger, options);
  } finally {
    await closeWithin(closeFirestore(firestore), config.firestore.timeoutMs);
  }
}

/** Google's OAuth endpoints as the service's own client. */
function googleOAuthClient(
  config: Config,
  oauthClient: { clientId: string; clientSecret: string },
  clock: Clock,
  logger: Logger,
  metrics: Metrics = NO_METRICS,
  tracer?: Tracer,
): GoogleOAuthClient {
  return new GoogleOAuthClient({
    clientId: oauthClient.clientId,
    clientSecret: oauthClient.clientSecret,
    endpoints: config.google,
    timeoutMs: config.google.timeoutMs,
    retries: config.google.retries,
    backoffMs: config.google.backoffMs,
    breakerFailures: config.google.breakerFailures,
    breakerOpenMs: config.google.breakerOpenMs,
    clock,
    logger,
    metrics,
    tracer,
  });
}

function revocationLedger(firestore: Firestore, config: Config, clock: Clock, metrics: Metrics = NO_METRICS): FirestoreRevocationLedger {
  return new FirestoreRevocationLedger(firestore, `${config.firestore.collection}_revocations`, clock, config.firestore.timeoutMs, metrics);
}

/**
 * The `retry-revocations` job: tells Google about the revocations RevokeUser
 * could not get confirmed (see retryRevocations).
 */
export async function runRetryRevocations(config: Config, overrides: AppOverrides = {}): Promise<RetryRevocationsReport> {
  const clock = overrides.clock ?? systemClock;
  const logger = createLogger(config.logLevel, overrides.logDestination);
  const { oauthClient, keyset } = await readSecrets(config);
  const firestore = openFirestore(config);
  try {
    const oauth = googleOAuthClient(config, oauthClient, clock, logger);
    return await retryRevocations(revocationLedger(firestore.db, config, clock), oauth, new Sealer(keyset), logger, {
      pageSize: 100,
      callTimeoutMs: config.callTimeoutMs,
    });
  } finally {
    await closeWithin(closeFirestore(firestore), config.firestore.timeoutMs);
  }
}

/**
 * The `rotate-keys` job: with the service's own configuration, seals every
 * stored grant again under the keyset's primary key (see resealGrants).
 */
export async function runResealGrants(config: Config, options: ResealOptions, overrides: AppOverrides = {}): Promise<ResealReport> {
  const logger = createLogger(config.logLevel, overrides.logDestination);
  const { keyset } = await readSecrets(config);
  const firestore = openFirestore(config);
  try {
    const store = new FirestoreGrantStore(firestore.db, firestore.documents, config.firestore.collection, config.firestore.timeoutMs);
    return await resealGrants(store, new Sealer(keyset), logger, options);
  } finally {
    await closeWithin(closeFirestore(firestore), config.firestore.timeoutMs);
  }
}

/** Reads and validates the caller policy file; any problem is a ConfigError naming the setting. */
async function readPolicy(config: Config): Promise<CallerPolicy | undefined> {
  if (config.callers.mode === 'insecure-none') return undefined;
  const file = config.callers.policyFile;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err: unknown) {
    throw new ConfigError(`TOKENBROKER_POLICY_FILE: cannot read ${file} (${(err as { code?: string }).code ?? 'error'})`);
  }
  try {
    return CallerPolicy.parse(text, file);
  } catch (err: unknown) {
    if (err instanceof PolicyError) throw new ConfigError(`TOKENBROKER_POLICY_FILE: ${err.message}`);
    throw err;
  }
}

/** The gate of every RPC: the caller's identity (Google ID token or client certificate), then the policy. */
function callerAccess(config: Config, policy: CallerPolicy | undefined, clock: Clock, metrics: Metrics): CallerAccess {
  if (config.callers.mode === 'insecure-none' || !policy) return new InsecureOpenAccess();
  if (config.callers.mode === 'mtls') return new EnforcedAccess(new CertificateAuthenticator(), policy);
  if (config.callers.mode === 'mesh-xfcc') return new EnforcedAccess(new MeshAuthenticator(), policy);
  const client = new OAuth2Client();
  const certs = new GoogleCerts(client, {
    url: config.google.certsUrl,
    timeoutMs: config.google.timeoutMs,
    defaultMaxAgeMs: 5 * 60_000,
    minRefetchIntervalMs: 30_000,
    clock,
    metrics,
  });
  const verifier = new GoogleCallerTokenVerifier(client, certs, config.callers.audience, config.google.issuers);
  return new EnforcedAccess(new BearerTokenAuthenticator(verifier, { maxCached: 10_000, clock }), policy);
}

/** Reads the OAuth client, the keyset and (with mtls) the TLS material, in parallel, with bounded time. */
async function readSecrets(config: Config) {
  const tlsRefs = config.callers.mode === 'mtls' ? config.callers.tls : undefined;
  const refs = [config.secrets.oauthClientRef, config.secrets.keysetRef, ...(tlsRefs ? [tlsRefs.certRef, tlsRefs.keyRef, tlsRefs.clientCaRef] : [])];
  const needsSecretManager = refs.some((ref) => !ref.startsWith('file:'));
  const client = needsSecretManager ? secretManagerClient(config) : undefined;
  const source = new SecretManagerSource(client, { timeoutMs: config.secrets.timeoutMs });
  try {
    const [clientJson, keysetJson, cert, key, clientCa] = await Promise.all(refs.map((ref) => source.read(ref)));
    return {
      oauthClient: parseOAuthClientJson((clientJson as Buffer).toString('utf8'), 'TOKENBROKER_OAUTH_CLIENT_SECRET'),
      keyset: parseKeyset((keysetJson as Buffer).toString('utf8'), 'TOKENBROKER_ENCRYPTION_KEYSET'),
      tls: cert && key && clientCa ? parseTlsMaterial(cert, key, clientCa) : undefined,
    };
  } finally {
    await client?.close();
  }
}

// Loaded on demand: a deployment reading its secrets from files, or serving
// no metrics, does not pay for loading the package at start (cold start).

function secretManagerClient(config: Config): SecretManagerServiceClient {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- see above
  const { SecretManagerServiceClient } = require('@google-cloud/secret-manager') as typeof import('@google-cloud/secret-manager');
  return new SecretManagerServiceClient(secretManagerOptions(config));
}

function prometheusMetrics(): PrometheusMetrics {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- see above
  const { PrometheusMetrics } = require('./observability/prometheus-metrics') as typeof import('./observability/prometheus-metrics');
  return new PrometheusMetrics();
}

function secretManagerOptions(config: Config) {
  const endpoint = config.secrets.secretManagerEndpoint;
  if (!endpoint) return {};
  const [host, port] = splitHostPort(endpoint);
  // A local plaintext endpoint (tests, dev): no TLS, no credentials lookup.
  return { apiEndpoint: host, port, sslCreds: credentials.createInsecure(), universeDomain: 'googleapis.com' };
}

/**
 * One database's two clients: the library's high-level client for queries
 * and the rarer writes, and {@link FirestoreDocuments} for the
 * single-document reads and commits of sign-ins and refreshes.
 */
interface FirestoreClients {
  db: Firestore;
  documents: FirestoreDocuments;
}

function openFirestore(config: Config): FirestoreClients {
  // A settings object each: the high-level client keeps and amends the one it is given.
  return { db: new Firestore(firestoreSettings(config)), documents: FirestoreDocuments.open(firestoreSettings(config)) };
}

async function closeFirestore(firestore: FirestoreClients): Promise<void> {
  await Promise.all([firestore.db.terminate(), firestore.documents.close()]);
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
