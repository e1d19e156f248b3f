/**
 * The local dev stack, `npm run dev`: the Firestore emulator, a local
 * stand-in for Google's OAuth endpoints and TokenBroker itself, all on
 * 127.0.0.1, with fresh secrets in the dev directory (`.dev/`). It records
 * where it listens in `.dev/stack.json`, where the CLI looks for it.
 *
 * Run as a program it prints how to try it and stops everything on Ctrl-C;
 * imported, {@link startDevStack} does the same for a test in-process.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { startApp, type RunningApp } from '../app';
import { ConfigError, loadConfig } from '../config/config';
import { devDirectory, ensurePrivateDirectory, readDevState, removeDevState, writeDevState, writePrivateFile } from '../cli/dev-state';
import { FirestoreEmulator } from './firestore-emulator';
import { LocalOAuthServer } from './oauth-server';

/** The server OAuth client ID the local Google knows the dev broker by. */
export const DEV_SERVER_CLIENT_ID = 'tokenbroker-dev.apps.googleusercontent.com';
/** The (pretend) iOS app client that signs users in: the `azp` the broker allows. */
export const DEV_APP_CLIENT_ID = 'tokenbroker-dev-ios.apps.googleusercontent.com';
/** Project of the emulator's documents. */
export const DEV_PROJECT = 'tokenbroker-dev';
/** The broker's port when nothing else is asked for and it is free. */
export const PREFERRED_PORT = 8080;

const OAUTH_CLIENT_FILE = 'oauth-client.json';
const KEYSET_FILE = 'keyset.json';

/** Options of {@link startDevStack}. */
export interface DevStackOptions {
  /** Directory for the secrets and stack.json; created owner-only. */
  dir: string;
  /** The broker's port, exactly (0: any). Unset: {@link PREFERRED_PORT}, or any free port when that one is taken. */
  port?: number;
  /** Where the broker's JSON log lines go. Default: stdout, as in production. */
  logDestination?: NodeJS.WritableStream;
}

/** A running dev stack. */
export interface DevStack {
  /** host:port of the broker (gRPC, plaintext). */
  address: string;
  /** Base URL of the local Google. */
  oauthUrl: string;
  /** host:port of the Firestore emulator. */
  firestoreHost: string;
  /** True when {@link PREFERRED_PORT} was taken and the broker listens elsewhere. */
  movedOffPreferredPort: boolean;
  /** Stops the broker, the local Google and the emulator, and deletes what it wrote. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Starts the whole stack. If any part fails to start, what did start is
 * stopped again and the error (naming what is missing) is thrown.
 */
export async function startDevStack(options: DevStackOptions): Promise<DevStack> {
  const dir = options.dir;
  const other = readDevState(dir);
  if (other !== undefined && other.pid !== process.pid) {
    throw new Error(
      `another dev stack (pid ${other.pid}) is running from ${dir} at ${other.address}: stop it first ` +
        `(or delete ${path.join(dir, 'stack.json')} if that process is not a dev stack)`,
    );
  }
  ensurePrivateDirectory(dir);

  // Undone in reverse order, so the broker stops before what it depends on.
  const undo: (() => Promise<void> | void)[] = [];
  const stopAll = async () => {
    const failures: unknown[] = [];
    for (const step of undo.splice(0).reverse()) {
      try {
        await step();
      } catch (err: unknown) {
        failures.push(err);
      }
    }
    if (failures.length > 0) throw failures[0];
  };
  try {
    const emulator = await FirestoreEmulator.start({ projectId: DEV_PROJECT });
    undo.push(() => emulator.stop());

    const clientSecret = `GOCSPX-${randomBytes(18).toString('base64url')}`;
    const google = await LocalOAuthServer.start({ clientId: DEV_SERVER_CLIENT_ID, clientSecret, appClientIds: [DEV_APP_CLIENT_ID] });
    undo.push(() => google.close());

    // Files rather than a local Secret Manager: `file:` refs are the documented local-development path.
    const clientFile = path.join(dir, OAUTH_CLIENT_FILE);
    const keysetFile = path.join(dir, KEYSET_FILE);
    undo.push(() => {
      rmSync(clientFile, { force: true });
      rmSync(keysetFile, { force: true });
    });
    writePrivateFile(clientFile, `${JSON.stringify({ installed: { client_id: DEV_SERVER_CLIENT_ID, client_secret: clientSecret } })}\n`);
    const key = randomBytes(32).toString('base64');
    writePrivateFile(keysetFile, `${JSON.stringify({ primary: 'dev1', keys: [{ id: 'dev1', key }] })}\n`);

    const env: Record<string, string> = {
      TOKENBROKER_LISTEN_HOST: '127.0.0.1',
      GOOGLE_CLOUD_PROJECT: DEV_PROJECT,
      FIRESTORE_EMULATOR_HOST: emulator.host,
      TOKENBROKER_OAUTH_CLIENT_SECRET: `file:${clientFile}`,
      TOKENBROKER_ENCRYPTION_KEYSET: `file:${keysetFile}`,
      TOKENBROKER_GOOGLE_TOKEN_URL: google.endpoints.tokenUrl,
      TOKENBROKER_GOOGLE_REVOKE_URL: google.endpoints.revokeUrl,
      TOKENBROKER_GOOGLE_CERTS_URL: google.endpoints.pemCertsUrl,
      TOKENBROKER_ID_TOKEN_ISSUERS: google.issuer,
      TOKENBROKER_ALLOWED_APP_CLIENT_IDS: DEV_APP_CLIENT_ID,
      TOKENBROKER_LOG_LEVEL: 'debug',
      TOKENBROKER_SHUTDOWN_GRACE_MS: '2000',
      // The dev stack serves anyone on loopback; the broker warns about it at start.
      TOKENBROKER_CALLER_AUTH: 'insecure-none',
    };
    const logDestination = options.logDestination ?? process.stdout;
    const { app, moved } = await startBroker(env, options.port, logDestination);
    undo.push(() => app.stop());

    const address = `127.0.0.1:${app.port}`;
    writeDevState(dir, { address, oauthUrl: google.url, pid: process.pid });
    undo.push(() => removeDevState(dir, process.pid));

    let stopping: Promise<void> | undefined;
    return {
      address,
      oauthUrl: google.url,
      firestoreHost: emulator.host,
      movedOffPreferredPort: moved,
      stop: () => (stopping ??= stopAll()),
    };
  } catch (err: unknown) {
    await stopAll().catch(() => undefined);
    throw err;
  }
}

/** Starts the broker on `port`, or on 8080 falling back to any free port when 8080 is taken. */
async function startBroker(
  env: Record<string, string>,
  port: number | undefined,
  logDestination: NodeJS.WritableStream,
): Promise<{ app: RunningApp; moved: boolean }> {
  const start = (p: number) => startApp(loadConfig({ ...env, PORT: String(p) }), { logDestination });
  if (port !== undefined) return { app: await start(port), moved: false };
  // Checked first because grpc-js logs a failed bind to stderr before it reports it.
  if (!(await isPortFree(PREFERRED_PORT))) return { app: await start(0), moved: true };
  try {
    return { app: await start(PREFERRED_PORT), moved: false };
  } catch (err: unknown) {
    // grpc-js reports a taken port as "No address added out of total 1 resolved, errors: [...EADDRINUSE...]".
    if (!(err instanceof Error && /EADDRINUSE|No address added/.test(err.message))) throw err;
    return { app: await start(0), moved: true };
  }
}

/** True when nothing listens on 127.0.0.1:`port` (another process may take it right after). */
function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

/** The text printed once the stack is up: where everything is and what to try. */
export function banner(stack: DevStack, dir: string, defaultDir: string): string {
  const lines = [
    'TokenBroker dev stack is up.',
    `  broker     ${stack.address} (gRPC, plaintext)`,
    `  google     ${stack.oauthUrl} (local stand-in)`,
    `  firestore  ${stack.firestoreHost} (emulator)`,
    `  files      ${dir} (fresh OAuth client secret and keyset, removed on exit)`,
  ];
  if (stack.movedOffPreferredPort) {
    lines.push(`Port ${PREFERRED_PORT} is in use, so the broker took another one; the CLI finds it through ${path.join(dir, 'stack.json')}.`);
  }
  lines.push('Try:');
  if (dir !== defaultDir) lines.push(`  export TOKENBROKER_DEV_DIR=${dir}`);
  lines.push(
    '  npm run cli -- dev-signin --email alice@example.com',
    '  npm run cli -- token --user <user_id printed above>',
    '  npm run cli -- profile --user <user_id>',
    '  npm run cli -- health',
    'Ctrl-C stops everything.',
  );
  return lines.join('\n');
}

/** Reads PORT as the production service does; undefined when unset. */
function portFromEnv(raw: string | undefined): number | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  const port = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || port > 65535) throw new ConfigError('PORT must be a whole number from 0 to 65535');
  return port;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The program: start, print the banner, stop everything on the first signal and exit 0. */
async function main(): Promise<void> {
  const defaultDir = devDirectory(undefined, process.cwd());
  const dir = devDirectory(process.env.TOKENBROKER_DEV_DIR, process.cwd());
  let stack: DevStack | undefined;
  let signalled = false;

  const shutDown = (signal: NodeJS.Signals) => {
    if (signalled) {
      // A second Ctrl-C: stop waiting. The emulator's own exit hook still kills its JVM.
      removeDevState(dir, process.pid);
      process.exit(1);
    }
    signalled = true;
    console.log(`\n${signal}: stopping the dev stack...`);
    // Still starting: the start-up path below sees `signalled` and stops.
    stack?.stop().then(
      () => {
        console.log('Dev stack stopped.');
        process.exit(0);
      },
      (err: unknown) => {
        console.error(`Dev stack did not stop cleanly: ${message(err)}`);
        process.exit(1);
      },
    );
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, shutDown);

  try {
    stack = await startDevStack({ dir, port: portFromEnv(process.env.PORT) });
  } catch (err: unknown) {
    if (signalled) process.exit(0);
    // Start-up errors name what is missing (gcloud, Java, a taken PORT); they hold no secret.
    console.error(`TokenBroker dev stack failed to start: ${message(err)}`);
    process.exit(1);
  }
  if (signalled) {
    await stack.stop().catch(() => undefined);
    process.exit(0);
  }
  console.log(banner(stack, dir, defaultDir));
}

if (require.main === module) {
  // Google's client libraries look for credentials and probe the GCE metadata server; nothing
  // here may leave the machine, nor pick up a developer's real project or credentials. They
  // read these variables when a client is built, not when loaded, so doing it here (after
  // the hoisted imports, before anything is started) is in time.
  process.env.METADATA_SERVER_DETECTION = 'none';
  for (const name of Object.keys(process.env)) {
    if (name.startsWith('GOOGLE_') || name === 'FIRESTORE_EMULATOR_HOST') delete process.env[name];
  }
  void main();
}
