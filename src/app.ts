import { Firestore, type Settings } from '@google-cloud/firestore';
import { SecretManagerServiceClient } from '@google-cloud/secret-manager';
import { credentials, ServerCredentials } from '@grpc/grpc-js';
import { OAuth2Client } from 'google-auth-library';
import { readFile } from 'node:fs/promises';
import { FirestoreExchangeLedger } from './adapters/firestore/firestore-exchange-ledger';
import { FirestoreGrantStore } from './adapters/firestore/firestore-grant-store';
import { FirestoreRevocationLedger } from './adapters/firestore/firestore-revocation-ledger';
import { FirestoreSharedTokenStore } from './adapters/firestore/firestore-shared-token-store';
import { GoogleCallerTokenVerifier } from './adapters/google/google-caller-token-verifier';
import { GoogleCerts } from './adapters/google/google-certs';
import { GoogleOAuthClient } from './adapters/google/google-oauth-client';
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
import { TokenBroker } from './domain/token-broker';
import { describeError } from './observability/describe-error';
import { createLogger, type Logger } from './observability/logger';
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

  const policy = await readPolicy(config);
  const { oauthClient, keyset, tls } = await readSecrets(config);
  const firestore = new Firestore(firestoreSettings(config));
  const { broker, revocations } = buildBroker(config, firestore, oauthClient, new Sealer(keyset), clock, logger);

  const access = callerAccess(config, policy, clock);
  if (config.callers.mode === 'insecure-none') {
    logger.warn({ event: 'insecure_caller_auth' }, 'TOKENBROKER_CALLER_AUTH=insecure-none: ANY CALLER CAN GET ANY USER\'S TOKENS. Local development only.');
  }
  const grpc = createGrpcServer(broker, { logger, callTimeoutMs: config.callTimeoutMs, access });
  const { server, health } = grpc;
  let port: number;
  let healthPort: number | undefined;
  const healthServer = config.healthPort === undefined ? undefined : healthOnlyServer(health);
  try {
    port = await listen(server, config.host, config.port, tls ? mutualTls(tls) : ServerCredentials.createInsecure());
    // Kubelet's gRPC probes speak plaintext only: with mtls they need a port of their own.
    if (healthServer) healthPort = await listen(healthServer, config.host, config.healthPort ?? 0, ServerCredentials.createInsecure());
  } catch (err: unknown) {
    server.forceShutdown();
    healthServer?.forceShutdown();
    await firestore.terminate();
    throw err;
  }
  // Revocations recorded by any replica drop this one's cached tokens.
  const unwatch = revocations.watch(
    (userId) => broker.forget(userId),
    (err) => logger.error({ event: 'revocation_watch_failed', error: describeError(err) }, 'lost the revocation feed; cached tokens of users revoked elsewhere may be served until it is back'),
  );
  health.setStatus('', 'SERVING');
  health.setStatus(SERVICE_NAME, 'SERVING');
  logger.info({ event: 'started', port, healthPort, callerAuth: config.callers.mode, project: config.projectId }, 'TokenBroker serving');

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      const started = Date.now();
      const cut = await shutdown(grpc, config.shutdownGraceMs);
      unwatch();
      healthServer?.forceShutdown();
      await closeWithin(firestore.terminate(), config.firestore.timeoutMs);
      logger.info({ event: 'stopped', drainMs: Date.now() - started, callsCut: cut }, 'TokenBroker stopped');
    })();
    return stopping;
  };
  return { port, healthPort, broker, logger, stop };
}

/** The domain and its adapters over one Firestore client. */
function buildBroker(
  config: Config,
  firestore: Firestore,
  oauthClient: { clientId: string; clientSecret: string },
  sealer: Sealer,
  clock: Clock,
  logger: Logger,
) {
  const store = new FirestoreGrantStore(firestore, config.firestore.collection, config.firestore.timeoutMs);
  const revocations = revocationLedger(firestore, config, clock);
  const broker = new TokenBroker(
    {
      store,
      shared: new FirestoreSharedTokenStore(firestore, `${config.firestore.collection}_access_tokens`, config.firestore.timeoutMs),
      exchanges: new FirestoreExchangeLedger(firestore, `${config.firestore.collection}_code_exchanges`, clock, config.firestore.timeoutMs),
      revocations,
      oauth: googleOAuthClient(config, oauthClient, clock, logger),
      sealer,
      clock,
      logger,
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
  const firestore = new Firestore(firestoreSettings(config));
  try {
    const { broker, store } = buildBroker(config, firestore, oauthClient, new Sealer(keyset), clock, logger);
    return await keepGrantsAlive(store, broker, clock, logger, options);
  } finally {
    await closeWithin(firestore.terminate(), config.firestore.timeoutMs);
  }
}

/** Google's OAuth endpoints as the service's own client. */
function googleOAuthClient(config: Config, oauthClient: { clientId: string; clientSecret: string }, clock: Clock, logger: Logger): GoogleOAuthClient {
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
  });
}

function revocationLedger(firestore: Firestore, config: Config, clock: Clock): FirestoreRevocationLedger {
  return new FirestoreRevocationLedger(firestore, `${config.firestore.collection}_revocations`, clock, config.firestore.timeoutMs);
}

/**
 * The `retry-revocations` job: tells Google about the revocations RevokeUser
 * could not get confirmed (see retryRevocations).
 */
export async function runRetryRevocations(config: Config, overrides: AppOverrides = {}): Promise<RetryRevocationsReport> {
  const clock = overrides.clock ?? systemClock;
  const logger = createLogger(config.logLevel, overrides.logDestination);
  const { oauthClient, keyset } = await readSecrets(config);
  const firestore = new Firestore(firestoreSettings(config));
  try {
    const oauth = googleOAuthClient(config, oauthClient, clock, logger);
    return await retryRevocations(revocationLedger(firestore, config, clock), oauth, new Sealer(keyset), logger, {
      pageSize: 100,
      callTimeoutMs: config.callTimeoutMs,
    });
  } finally {
    await closeWithin(firestore.terminate(), config.firestore.timeoutMs);
  }
}

/**
 * The `rotate-keys` job: with the service's own configuration, seals every
 * stored grant again under the keyset's primary key (see resealGrants).
 */
export async function runResealGrants(config: Config, options: ResealOptions, overrides: AppOverrides = {}): Promise<ResealReport> {
  const logger = createLogger(config.logLevel, overrides.logDestination);
  const { keyset } = await readSecrets(config);
  const firestore = new Firestore(firestoreSettings(config));
  try {
    const store = new FirestoreGrantStore(firestore, config.firestore.collection, config.firestore.timeoutMs);
    return await resealGrants(store, new Sealer(keyset), logger, options);
  } finally {
    await closeWithin(firestore.terminate(), config.firestore.timeoutMs);
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
function callerAccess(config: Config, policy: CallerPolicy | undefined, clock: Clock): CallerAccess {
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
  });
  const verifier = new GoogleCallerTokenVerifier(client, certs, config.callers.audience, config.google.issuers);
  return new EnforcedAccess(new BearerTokenAuthenticator(verifier, { maxCached: 10_000, clock }), policy);
}

/** Reads the OAuth client, the keyset and (with mtls) the TLS material, in parallel, with bounded time. */
async function readSecrets(config: Config) {
  const tlsRefs = config.callers.mode === 'mtls' ? config.callers.tls : undefined;
  const refs = [config.secrets.oauthClientRef, config.secrets.keysetRef, ...(tlsRefs ? [tlsRefs.certRef, tlsRefs.keyRef, tlsRefs.clientCaRef] : [])];
  const needsSecretManager = refs.some((ref) => !ref.startsWith('file:'));
  const client = needsSecretManager ? new SecretManagerServiceClient(secretManagerOptions(config)) : undefined;
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
