/**
 * The local world the benchmark runs the real service in: the Firestore
 * emulator (behind a counting proxy), the local Google OAuth server (behind
 * a timing proxy), file secrets, a caller policy, and brokers started as
 * `node dist/main.js` with production settings.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { TokenBrokerClient } from '../../src/client/token-broker-client';
import { FirestoreEmulator } from '../../src/local/firestore-emulator';
import { LocalOAuthServer, type TestUser } from '../../src/local/oauth-server';
import { FirestoreProxy } from './firestore-proxy';
import { HttpTimingProxy } from './http-timing-proxy';
import { freePort, ManagedChild, waitServing } from './processes';

export const PROJECT = 'tokenbroker-bench';
export const SERVER_CLIENT_ID = '100000000001-server.apps.googleusercontent.com';
export const APP_CLIENT_ID = '100000000001-ios.apps.googleusercontent.com';
export const AUDIENCE = 'https://tokenbroker.bench.example';
/** May exchange codes (the gateway). */
export const GATEWAY = 'gateway@tokenbroker-bench.iam.gserviceaccount.com';
/** May get tokens (an internal service). */
export const PHOTOS = 'photos@tokenbroker-bench.iam.gserviceaccount.com';

const SCOPE = 'https://www.googleapis.com/auth/';
export const DRIVE = `${SCOPE}drive.readonly`;
export const CALENDAR = `${SCOPE}calendar.readonly`;
export const GMAIL = `${SCOPE}gmail.readonly`;
export const CONTACTS = `${SCOPE}contacts.readonly`;
/** What every bench user grants at sign-in. */
export const SIGN_IN_SCOPES = ['openid', 'email', 'profile', DRIVE, CALENDAR, GMAIL, CONTACTS];

export const GET_ACCESS_TOKEN_PATH = '/tokenbroker.v1.TokenBrokerService/GetAccessToken';
export const EXCHANGE_CODE_PATH = '/tokenbroker.v1.TokenBrokerService/ExchangeCode';

/** A broker process and how long it took to serve. */
export interface BrokerProcess {
  name: string;
  child: ManagedChild;
  port: number;
  address: string;
  /** Where it serves Prometheus metrics (production turns them on; so does the benchmark). */
  metricsUrl: string;
  /** Spawn to grpc.health.v1 SERVING, as seen by a client polling every 5 ms. */
  coldStartMs: number;
  /** performance.now() at spawn. */
  spawnedAt: number;
}

/** Options of one broker process. */
export interface BrokerOptions {
  stdout?: 'pipe' | 'devnull';
  /** Extra or replaced environment. */
  env?: Record<string, string>;
  /** Extra node flags (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** Talk to the emulator and the OAuth server directly, not through the counting proxies. */
  direct?: boolean;
}

export class BenchStack {
  private userCounter = 0;
  private readonly userPrefix = String(randomInt(10_000, 99_999));

  private constructor(
    readonly workDir: string,
    readonly repoRoot: string,
    readonly emulator: FirestoreEmulator,
    readonly google: LocalOAuthServer,
    readonly oauthProxy: HttpTimingProxy,
    readonly firestore: FirestoreProxy,
    /** The broker environment every instance shares. */
    readonly env: Readonly<Record<string, string>>,
    readonly keysetFile: string,
    readonly clientSecret: string,
    readonly collection: string,
  ) {}

  /**
   * Starts the dependencies; `onStop` receives each stop step as soon as the
   * thing it stops exists, so a failure half-way still cleans up.
   */
  static async start(workDir: string, repoRoot: string, onStop: (step: () => Promise<void>) => void): Promise<BenchStack> {
    const emulator = await FirestoreEmulator.start({ projectId: PROJECT });
    onStop(() => emulator.stop());
    const clientSecret = `GOCSPX-${randomBytes(18).toString('base64url')}`;
    const google = await LocalOAuthServer.start({ clientId: SERVER_CLIENT_ID, clientSecret, appClientIds: [APP_CLIENT_ID] });
    onStop(() => google.close());
    const oauthProxy = await HttpTimingProxy.start(google.url);
    onStop(() => oauthProxy.close());
    const firestore = await FirestoreProxy.start(emulator.host);
    onStop(() => firestore.close());

    const secretsDir = path.join(workDir, 'secrets');
    mkdirSync(secretsDir, { mode: 0o700 });
    const clientFile = path.join(secretsDir, 'oauth-client.json');
    const keysetFile = path.join(secretsDir, 'keyset.json');
    const policyFile = path.join(secretsDir, 'policy.yaml');
    writeFileSync(clientFile, JSON.stringify({ installed: { client_id: SERVER_CLIENT_ID, client_secret: clientSecret } }), { mode: 0o600 });
    writeFileSync(keysetFile, JSON.stringify({ primary: 'k1', keys: [{ id: 'k1', key: randomBytes(32).toString('base64') }] }), { mode: 0o600 });
    writeFileSync(
      policyFile,
      [
        'callers:',
        `  ${GATEWAY}:`,
        '    rpcs: [ExchangeCode, GetProfile]',
        `  ${PHOTOS}:`,
        '    rpcs: [GetAccessToken]',
        `    scopes: [${[DRIVE, CALENDAR, GMAIL, CONTACTS].join(', ')}]`,
        '',
      ].join('\n'),
    );
    const collection = `bench_${randomBytes(4).toString('hex')}`;
    const env: Record<string, string> = {
      NODE_ENV: 'production',
      TOKENBROKER_LISTEN_HOST: '127.0.0.1',
      GOOGLE_CLOUD_PROJECT: PROJECT,
      FIRESTORE_EMULATOR_HOST: firestore.host,
      TOKENBROKER_FIRESTORE_COLLECTION: collection,
      TOKENBROKER_OAUTH_CLIENT_SECRET: `file:${clientFile}`,
      TOKENBROKER_ENCRYPTION_KEYSET: `file:${keysetFile}`,
      TOKENBROKER_GOOGLE_TOKEN_URL: oauthProxy.rewrite(google.endpoints.tokenUrl),
      TOKENBROKER_GOOGLE_REVOKE_URL: oauthProxy.rewrite(google.endpoints.revokeUrl),
      TOKENBROKER_GOOGLE_CERTS_URL: oauthProxy.rewrite(google.endpoints.pemCertsUrl),
      TOKENBROKER_ID_TOKEN_ISSUERS: google.issuer,
      TOKENBROKER_ALLOWED_APP_CLIENT_IDS: APP_CLIENT_ID,
      TOKENBROKER_CALLER_AUTH: 'google-id-token',
      TOKENBROKER_CALLER_AUDIENCE: AUDIENCE,
      TOKENBROKER_POLICY_FILE: policyFile,
      TOKENBROKER_LOG_LEVEL: 'info',
    };
    return new BenchStack(workDir, repoRoot, emulator, google, oauthProxy, firestore, env, keysetFile, clientSecret, collection);
  }

  /** Starts `node dist/main.js` on an OS-picked port and waits for health SERVING. */
  async startBroker(name: string, options: BrokerOptions = {}): Promise<BrokerProcess> {
    const port = await freePort();
    const metricsPort = await freePort();
    const started = performance.now();
    const child = ManagedChild.start({
      name,
      command: process.execPath,
      args: [...(options.nodeArgs ?? []), path.join(this.repoRoot, 'dist', 'main.js')],
      env: { ...this.env, ...(options.direct ? this.directEnv() : {}), PORT: String(port), TOKENBROKER_METRICS_PORT: String(metricsPort), ...options.env },
      stdout: options.stdout ?? 'pipe',
      cwd: this.repoRoot,
    });
    try {
      await waitServing(child, port, 20_000);
    } catch (err: unknown) {
      await child.stop('SIGKILL');
      throw err;
    }
    return { name, child, port, address: `127.0.0.1:${port}`, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, coldStartMs: performance.now() - started, spawnedAt: started };
  }

  /** Endpoints without the proxies in between. */
  private directEnv(): Record<string, string> {
    return {
      FIRESTORE_EMULATOR_HOST: this.emulator.host,
      TOKENBROKER_GOOGLE_TOKEN_URL: this.google.endpoints.tokenUrl,
      TOKENBROKER_GOOGLE_REVOKE_URL: this.google.endpoints.revokeUrl,
      TOKENBROKER_GOOGLE_CERTS_URL: this.google.endpoints.pemCertsUrl,
    };
  }

  /** A Google-signed ID token for the service account `email`, minted for our audience, valid an hour. */
  callerToken(email: string): string {
    const now = Math.floor(Date.now() / 1000);
    return this.google.signIdToken({
      iss: this.google.issuer,
      aud: AUDIENCE,
      azp: String(randomInt(1e9)),
      sub: `1${randomInt(1e9)}`,
      email,
      email_verified: true,
      iat: now,
      exp: now + 3600,
    });
  }

  /** A client of `broker` calling as `email`. */
  clientAs(broker: BrokerProcess, token: string): TokenBrokerClient {
    return new TokenBrokerClient(broker.address, { idToken: () => token });
  }

  /** A new Google account with a unique 21-digit `sub`. */
  newUser(): TestUser {
    this.userCounter += 1;
    const sub = `1${this.userPrefix}${String(this.userCounter).padStart(15, '0')}`;
    return { sub, email: `u${this.userCounter}@example.com`, emailVerified: true, name: `Bench User ${this.userCounter}`, givenName: 'Bench', familyName: 'User', picture: `https://example.com/${sub}.png`, locale: 'en' };
  }

  /** Mints a first-sign-in code at the local Google, as the app's sign-in would. */
  mintCode(user: TestUser): string {
    return this.google.mintCode(user, { scopes: SIGN_IN_SCOPES, appClientId: APP_CLIENT_ID });
  }
}

/** Runs `fn` over `items` with at most `limit` at once; results in order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      results[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
