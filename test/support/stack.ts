import { Firestore } from '@google-cloud/firestore';
import { expect } from 'chai';
import { randomBytes, randomInt } from 'node:crypto';
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

/** The server OAuth client the local Google knows the broker by. */
export const SERVER_CLIENT_ID = '100000000001-server.apps.googleusercontent.com';
/** The mobile app client allowed as `azp`. */
export const APP_CLIENT_ID = '100000000001-ios.apps.googleusercontent.com';
/** Default scopes of a test sign-in. */
export const SIGN_IN_SCOPES = ['openid', 'email', 'profile', 'https://www.googleapis.com/auth/drive.readonly'];

const PROJECT = 'tokenbroker-test';
const OAUTH_SECRET_NAME = `projects/${PROJECT}/secrets/oauth-client`;
const KEYSET_SECRET_NAME = `projects/${PROJECT}/secrets/token-keyset`;

/** Options of {@link TestStack.start}. */
export interface StackOptions {
  /** Extra or replaced environment settings of the broker. */
  env?: Record<string, string>;
  /** Secret the broker is configured with; defaults to the one the local Google expects. */
  brokerClientSecret?: string;
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
    private readonly config: Config,
  ) {}

  /** Starts a stack; close it with {@link close}. */
  static async start(options: StackOptions = {}): Promise<TestStack> {
    const clientSecret = `GOCSPX-${randomBytes(18).toString('base64url')}`;
    const key = randomBytes(32).toString('base64');
    issuedSecrets.add(clientSecret);
    issuedSecrets.add(key);
    const google = await LocalOAuthServer.start({ clientId: SERVER_CLIENT_ID, clientSecret, appClientIds: [APP_CLIENT_ID] });
    const brokerSecret = options.brokerClientSecret ?? clientSecret;
    issuedSecrets.add(brokerSecret);
    const secretManager = await LocalSecretManagerServer.start({
      secrets: {
        [OAUTH_SECRET_NAME]: JSON.stringify({ installed: { client_id: SERVER_CLIENT_ID, client_secret: brokerSecret } }),
        [KEYSET_SECRET_NAME]: JSON.stringify({ primary: 'k1', keys: [{ id: 'k1', key }] }),
      },
    });
    const emulator = options.emulator ?? firestoreEmulator();
    const collection = `grants_${randomBytes(4).toString('hex')}`;
    const config = loadConfig({
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
      TOKENBROKER_ALLOWED_APP_CLIENT_IDS: APP_CLIENT_ID,
      TOKENBROKER_UPSTREAM_TIMEOUT_MS: '2000',
      TOKENBROKER_UPSTREAM_RETRIES: '1',
      TOKENBROKER_LOG_LEVEL: 'debug',
      TOKENBROKER_SHUTDOWN_GRACE_MS: '1000',
      ...options.env,
    });
    const clock = new ManualClock();
    const stackLogs: string[] = [];
    let app: RunningApp;
    try {
      app = await startApp(config, { clock, logDestination: captureLogs(stackLogs) });
    } catch (err: unknown) {
      await Promise.all([google.close(), secretManager.close()]);
      throw err;
    }
    const client = new TokenBrokerClient(`127.0.0.1:${app.port}`);
    const db = new Firestore(emulator.clientSettings());
    return new TestStack(stackLogs, clock, google, secretManager, app, client, db, collection, config);
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
  }
}

/**
 * Asserts that `promise` fails with gRPC `code` and ErrorInfo `reason`, and
 * that the message sent holds no credential. Returns the error for more checks.
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
