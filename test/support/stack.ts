import { Firestore } from '@google-cloud/firestore';
import { expect } from 'chai';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startApp, type RunningApp } from '../../src/app';
import { TokenBrokerClient } from '../../src/client/token-broker-client';
import { errorInfoOf, isServiceError } from '../../src/client/error-info';
import { loadConfig, type Config } from '../../src/config/config';
import type { ExchangeCodeResponse } from '../../src/gen/tokenbroker/v1/token_broker';
import { LocalOAuthServer, type MintCodeOptions, type TestUser } from '../../src/local/oauth-server';
import { LocalSecretManagerServer } from '../../src/local/secret-manager-server';
import type { FirestoreEmulator } from '../../src/local/firestore-emulator';
import { firestoreEmulator } from './global-fixtures';
import { captureLogs, issuedSecrets, leakedSecrets } from './log-capture';
import { ManualClock } from './manual-clock';
import type { IssuedCert } from './test-pki';

/** The server OAuth client the local Google knows the broker by. */
export const SERVER_CLIENT_ID = '100000000001-server.apps.googleusercontent.com';
/** The mobile app client allowed as `azp`. */
export const APP_CLIENT_ID = '100000000001-ios.apps.googleusercontent.com';
/** Default scopes of a test sign-in. */
export const SIGN_IN_SCOPES = ['openid', 'email', 'profile', 'https://www.googleapis.com/auth/drive.readonly'];

const PROJECT = 'tokenbroker-test';
const OAUTH_SECRET_NAME = `projects/${PROJECT}/secrets/oauth-client`;
/** The keyset's secret in the stack's Secret Manager; the broker reads version 1 unless `env` says otherwise. */
export const KEYSET_SECRET_NAME = `projects/${PROJECT}/secrets/token-keyset`;

/** An encryption keyset as its secret holds it. */
export interface KeysetSpec {
  primary: string;
  keys: Array<{ id: string; key: string }>;
}

/** The audience a stack with a caller policy expects callers' ID tokens for. */
export const CALLER_AUDIENCE = 'https://tokenbroker.test';

/** Options of {@link TestStack.start}. */
export interface StackOptions {
  /**
   * A caller policy (YAML): the broker then authenticates callers by Google
   * ID token and enforces it. Without one it runs with insecure-none.
   */
  policy?: string;
  /**
   * With a policy: authenticate callers by client certificate instead
   * (TOKENBROKER_CALLER_AUTH=mtls), serving with this certificate and
   * trusting client certificates of this CA; health also on a plaintext port.
   */
  mtls?: { server: IssuedCert; clientCaFile: string };
  /** With a policy: trust the client identity a mesh sidecar forwards (TOKENBROKER_CALLER_AUTH=mesh-xfcc). */
  mesh?: boolean;
  /** Extra or replaced environment settings of the broker. */
  env?: Record<string, string>;
  /** Secret the broker is configured with; defaults to the one the local Google expects. */
  brokerClientSecret?: string;
  /** The encryption keyset (version 1 of its secret); default: one random key `k1`. */
  keyset?: KeysetSpec;
  /** A Firestore emulator of the test's own (to stop it mid-test); default: the suite's shared one. */
  emulator?: FirestoreEmulator;
}

/**
 * The whole service on loopback: the local Google OAuth server, a local
 * Secret Manager holding the OAuth client JSON and keyset, the shared
 * Firestore emulator, and TokenBroker itself called through a real client.
 */
export class TestStack {
  private constructor(
    /** Log lines of this stack's broker. */
    readonly logs: string[],
    readonly clock: ManualClock,
    readonly google: LocalOAuthServer,
    readonly secretManager: LocalSecretManagerServer,
    readonly app: RunningApp,
    readonly client: TokenBrokerClient,
    /** A separate Firestore client for inspecting what the broker stored. */
    readonly db: Firestore,
    readonly collection: string,
    /** The environment the broker was configured from (secret references, never secret values). */
    readonly env: Readonly<Record<string, string>>,
    readonly config: Config,
    private readonly policyDir: string,
  ) {}

  /** Starts a stack; close it with {@link close}. */
  static async start(options: StackOptions = {}): Promise<TestStack> {
    const clientSecret = `GOCSPX-${randomBytes(18).toString('base64url')}`;
    const keyset = options.keyset ?? { primary: 'k1', keys: [{ id: 'k1', key: randomBytes(32).toString('base64') }] };
    issuedSecrets.add(clientSecret);
    for (const { key } of keyset.keys) issuedSecrets.add(key);
    const google = await LocalOAuthServer.start({ clientId: SERVER_CLIENT_ID, clientSecret, appClientIds: [APP_CLIENT_ID] });
    const brokerSecret = options.brokerClientSecret ?? clientSecret;
    issuedSecrets.add(brokerSecret);
    const secretManager = await LocalSecretManagerServer.start({
      secrets: {
        [OAUTH_SECRET_NAME]: JSON.stringify({ installed: { client_id: SERVER_CLIENT_ID, client_secret: brokerSecret } }),
        [KEYSET_SECRET_NAME]: JSON.stringify(keyset),
      },
    });
    const emulator = options.emulator ?? firestoreEmulator();
    const collection = `grants_${randomBytes(4).toString('hex')}`;
    const policyDir = mkdtempSync(path.join(tmpdir(), 'tokenbroker-policy-'));
    const callerAuth: Record<string, string> = { TOKENBROKER_CALLER_AUTH: 'insecure-none' };
    if (options.policy !== undefined) {
      writeFileSync(path.join(policyDir, 'policy.yaml'), options.policy);
      Object.assign(
        callerAuth,
        options.mtls
          ? {
              TOKENBROKER_CALLER_AUTH: 'mtls',
              TOKENBROKER_TLS_CERT: `file:${options.mtls.server.certFile}`,
              TOKENBROKER_TLS_KEY: `file:${options.mtls.server.keyFile}`,
              TOKENBROKER_TLS_CLIENT_CA: `file:${options.mtls.clientCaFile}`,
              TOKENBROKER_HEALTH_PORT: '0',
            }
          : options.mesh
            ? { TOKENBROKER_CALLER_AUTH: 'mesh-xfcc' }
            : { TOKENBROKER_CALLER_AUTH: 'google-id-token', TOKENBROKER_CALLER_AUDIENCE: CALLER_AUDIENCE },
        { TOKENBROKER_POLICY_FILE: path.join(policyDir, 'policy.yaml') },
      );
    }
    const env: Record<string, string> = {
      ...callerAuth,
      TOKENBROKER_LISTEN_HOST: '127.0.0.1',
      PORT: '0',
      GOOGLE_CLOUD_PROJECT: emulator.projectId,
      FIRESTORE_EMULATOR_HOST: emulator.host,
      TOKENBROKER_FIRESTORE_COLLECTION: collection,
      TOKENBROKER_OAUTH_CLIENT_SECRET: `${OAUTH_SECRET_NAME}/versions/latest`,
      TOKENBROKER_ENCRYPTION_KEYSET: `${KEYSET_SECRET_NAME}/versions/1`,
      TOKENBROKER_SECRET_MANAGER_ENDPOINT: `${secretManager.host}:${secretManager.port}`,
      TOKENBROKER_GOOGLE_TOKEN_URL: google.endpoints.tokenUrl,
      TOKENBROKER_GOOGLE_REVOKE_URL: google.endpoints.revokeUrl,
      TOKENBROKER_GOOGLE_CERTS_URL: google.endpoints.pemCertsUrl,
      TOKENBROKER_ID_TOKEN_ISSUERS: google.issuer,
      TOKENBROKER_RISC_JWKS_URL: google.endpoints.riscJwksUrl,
      TOKENBROKER_RISC_ISSUER: google.riscIssuer,
      TOKENBROKER_ALLOWED_APP_CLIENT_IDS: APP_CLIENT_ID,
      TOKENBROKER_UPSTREAM_TIMEOUT_MS: '2000',
      TOKENBROKER_UPSTREAM_RETRIES: '1',
      TOKENBROKER_LOG_LEVEL: 'debug',
      TOKENBROKER_SHUTDOWN_GRACE_MS: '1000',
      ...options.env,
    };
    const config = loadConfig(env);
    const clock = new ManualClock();
    const stackLogs: string[] = [];
    let app: RunningApp;
    try {
      app = await startApp(config, { clock, logDestination: captureLogs(stackLogs) });
    } catch (err: unknown) {
      await Promise.all([google.close(), secretManager.close()]);
      rmSync(policyDir, { recursive: true, force: true });
      throw err;
    }
    const client = new TokenBrokerClient(`127.0.0.1:${app.port}`);
    const db = new Firestore(emulator.clientSettings());
    return new TestStack(stackLogs, clock, google, secretManager, app, client, db, collection, env, config, policyDir);
  }

  /**
   * Starts another broker instance with this stack's configuration and clock
   * (same Google, secrets and Firestore collection): a second replica.
   */
  async startPeer(): Promise<{ app: RunningApp; client: TokenBrokerClient; close(): Promise<void> }> {
    const app = await startApp(this.config, { clock: this.clock, logDestination: captureLogs(this.logs) });
    const client = new TokenBrokerClient(`127.0.0.1:${app.port}`);
    return {
      app,
      client,
      close: async () => {
        client.close();
        await app.stop();
      },
    };
  }

  /**
   * A Google-signed ID token for the service account `email`, minted for
   * {@link CALLER_AUDIENCE} by the local Google; `claims` override any claim.
   */
  callerToken(email: string, claims: Record<string, unknown> = {}): string {
    const now = Math.floor(Date.now() / 1000);
    const token = this.google.signIdToken({
      iss: this.google.issuer,
      aud: CALLER_AUDIENCE,
      azp: `${randomInt(1e9)}`,
      sub: `1${randomInt(1e9)}`,
      email,
      email_verified: true,
      iat: now,
      exp: now + 3600,
      ...claims,
    });
    issuedSecrets.add(token);
    return token;
  }

  /** A client of this stack's broker that calls as the service account `email`. */
  clientAs(email: string): TokenBrokerClient {
    const token = this.callerToken(email);
    return new TokenBrokerClient(`127.0.0.1:${this.app.port}`, { idToken: () => token });
  }

  /** A new Google account with a random `sub`. */
  newUser(overrides: Partial<TestUser> = {}): TestUser {
    const sub = `1${Array.from({ length: 20 }, () => randomInt(10)).join('')}`;
    return {
      sub,
      email: `user${sub.slice(-6)}@example.com`,
      emailVerified: true,
      name: 'Test User',
      givenName: 'Test',
      familyName: 'User',
      picture: `https://example.com/${sub}.png`,
      locale: 'en',
      ...overrides,
    };
  }

  /** Mints a code at the local Google the way the app's sign-in would, and remembers it as a secret. */
  mintCode(user: TestUser, options: Partial<MintCodeOptions> = {}): string {
    const code = this.google.mintCode(user, { scopes: SIGN_IN_SCOPES, appClientId: APP_CLIENT_ID, ...options });
    issuedSecrets.add(code);
    return code;
  }

  /** Signs `user` in end to end: mint a code, ExchangeCode through gRPC. */
  async signIn(user: TestUser, options: Partial<MintCodeOptions> = {}): Promise<ExchangeCodeResponse> {
    return this.client.exchangeCode({ authCode: this.mintCode(user, options) });
  }

  /** The raw stored document of `userId`, as Firestore holds it. */
  async rawDocument(userId: string): Promise<Record<string, unknown> | undefined> {
    const snapshot = await this.db.collection(this.collection).doc(userId).get();
    return snapshot.data();
  }

  /** Stops everything this stack started, and records the credentials Google issued. */
  async close(): Promise<void> {
    for (const secret of this.google.issuedSecrets()) issuedSecrets.add(secret);
    this.client.close();
    await this.app.stop();
    await Promise.all([this.google.close(), this.secretManager.close(), this.db.terminate()]);
    rmSync(this.policyDir, { recursive: true, force: true });
  }
}

/**
 * Asserts that `promise` fails with gRPC `code` and ErrorInfo `reason`, and
 * that neither the message nor the status details sent hold a credential. Returns the error for more checks.
 */
export async function expectGrpcError(promise: Promise<unknown>, code: number, reason?: string) {
  let caught: unknown;
  try {
    await promise;
  } catch (err: unknown) {
    caught = err;
  }
  if (!isServiceError(caught)) throw new Error(`expected a gRPC error ${code}${reason ? ` ${reason}` : ''}, got ${String(caught)}`);
  const info = errorInfoOf(caught);
  expect({ code: caught.code, reason: info?.reason }).to.deep.equal({ code, reason });
  expect(leakedSecrets(caught.details), 'credential in an error message').to.deep.equal([]);
  const statusDetails = caught.metadata.get('grpc-status-details-bin').map((v) => (Buffer.isBuffer(v) ? v.toString('latin1') : v));
  expect(leakedSecrets(statusDetails.join(' ')), 'credential in the status details').to.deep.equal([]);
  if (reason) expect(info?.domain).to.equal('tokenbroker.v1');
  return { error: caught, info };
}

/**
 * Gives a describe block its own stack: started before its tests, closed
 * after them, with Google's faults and request counts reset before each
 * test. The returned object forwards to the stack once it is running.
 */
export function useStack(options: StackOptions = {}): TestStack {
  let current: TestStack | undefined;
  before(async () => {
    current = await TestStack.start(options);
  });
  after(async () => {
    await current?.close();
  });
  beforeEach(() => {
    current?.google.clearFaults();
    current?.google.resetStats();
  });
  return new Proxy({} as TestStack, {
    get(_target, property) {
      if (!current) throw new Error('the test stack is used before its before() hook ran');
      const value: unknown = Reflect.get(current, property);
      return typeof value === 'function' ? value.bind(current) : value;
    },
  });
}
