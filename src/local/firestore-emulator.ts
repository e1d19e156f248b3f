/**
 * Starts and stops the real Firestore emulator that ships with the Google Cloud CLI, on a free
 * loopback port, for tests and the local dev stack.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, readdirSync, readFileSync, realpathSync } from 'node:fs';
import * as http from 'node:http';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import type { Settings } from '@google-cloud/firestore';

const LOOPBACK = '127.0.0.1';
const EMULATOR_SCRIPT = join('platform', 'cloud-firestore-emulator', 'cloud_firestore_emulator');
const INSTALL_HINT =
  'install the Google Cloud CLI component cloud-firestore-emulator ' +
  '(apt-get install google-cloud-cli-firestore-emulator, or gcloud components install cloud-firestore-emulator) ' +
  'and Java 17 (apt-get install openjdk-17-jre-headless)';
const POLL_INTERVAL_MS = 100;
const STOP_GRACE_MS = 5000;
const KILL_WAIT_MS = 5000;
const OUTPUT_LINES_KEPT = 20;

/** Options for {@link FirestoreEmulator.start}. */
export interface FirestoreEmulatorOptions {
  /** Project the client settings and {@link FirestoreEmulator.wipe} use. Default: 'tokenbroker-test'. */
  projectId?: string;
  /**
   * Google Cloud SDK root holding platform/cloud-firestore-emulator. Default: found from the
   * `gcloud` on PATH.
   */
  sdkRoot?: string;
  /** How long to wait for the emulator to answer before giving up. Default: 30000 ms. */
  startTimeoutMs?: number;
  /** Loopback port to listen on, e.g. to bring back a stopped emulator where clients expect it. Default: one the OS picks. */
  port?: number;
}

/**
 * A running Firestore emulator in its own process group. Start it with
 * {@link FirestoreEmulator.start}, build clients with {@link FirestoreEmulator.clientSettings},
 * and always {@link FirestoreEmulator.stop} it: the emulator is a JVM that outlives its launcher.
 */
export class FirestoreEmulator {
  private stopping: Promise<void> | undefined;

  /** Host and port clients connect to, e.g. '127.0.0.1:8123'. */
  readonly host: string;

  private constructor(
    private readonly port: number,
    /** Project whose documents tests read, write and wipe. */
    readonly projectId: string,
    /** Process group id of the launcher script and the java process it forks. */
    readonly pgid: number,
    private readonly exited: Promise<void>,
  ) {
    this.host = `${LOOPBACK}:${port}`;
  }

  /**
   * Starts the emulator and resolves once it answers on its port. Rejects with a message naming
   * what is missing when gcloud, the emulator component or Java cannot be found, and with the
   * emulator's last output lines when it exits or does not become ready in time.
   */
  static async start(options: FirestoreEmulatorOptions = {}): Promise<FirestoreEmulator> {
    const projectId = options.projectId ?? 'tokenbroker-test';
    const startTimeoutMs = options.startTimeoutMs ?? 30_000;
    if (!/^[a-z][a-z0-9-]{0,62}$/.test(projectId)) {
      throw new Error(
        `FirestoreEmulator: projectId must be a project id (lowercase letters, digits and hyphens), got "${projectId}"`,
      );
    }
    if (!(startTimeoutMs > 0)) {
      throw new Error(`FirestoreEmulator: startTimeoutMs must be a positive number, got ${startTimeoutMs}`);
    }
    const script = await findEmulatorScript(options.sdkRoot);
    await requireJava();
    const port = options.port ?? (await freeLoopbackPort());

    // detached: a group of its own, because the script forks java instead of exec'ing it and
    // only a group signal reaches both.
    const child = spawn(script, ['start', `--host=${LOOPBACK}`, `--port=${port}`], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output = keepLastLines(child, OUTPUT_LINES_KEPT);
    const exitInfo = watchExit(child);
    if (child.pid === undefined) {
      throw new Error(`Firestore emulator could not be started from ${script}: ${(await exitInfo.promise).reason}`);
    }
    const pgid = child.pid;
    runningGroups.add(pgid);
    installCleanupHandlers();
    const emulator = new FirestoreEmulator(port, projectId, pgid, exitInfo.promise.then(() => undefined));

    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      if (exitInfo.result) {
        // The script may have died by a signal and left java behind.
        signalGroup(pgid, 'SIGKILL');
        runningGroups.delete(pgid);
        throw new Error(`Firestore emulator exited before it was ready (${exitInfo.result.reason}). Last output:\n${output()}`);
      }
      if ((await isReady(emulator.host)) && !exitInfo.result) return emulator;
      if (Date.now() >= deadline) {
        await emulator.stop().catch(() => undefined);
        throw new Error(`Firestore emulator not ready on ${emulator.host} after ${startTimeoutMs} ms. Last output:\n${output()}`);
      }
      await sleep(POLL_INTERVAL_MS);
    }
  }

  /**
   * Firestore client settings that reach this emulator with no credentials and no metadata
   * probe, whether or not FIRESTORE_EMULATOR_HOST is set (if set, it wins inside the client).
   */
  clientSettings(): Settings {
    return {
      projectId: this.projectId,
      host: LOOPBACK,
      port: this.port,
      // ssl: false is the client's emulator mode: insecure channel credentials, so no auth lookup.
      ssl: false,
      // The emulator treats "Bearer owner" as an admin that bypasses security rules.
      customHeaders: { Authorization: 'Bearer owner' },
      // Without it google-auth-library asks the GCE metadata server for the universe domain.
      universeDomain: 'googleapis.com',
    };
  }

  /** Deletes every document of the project in the emulator, for a clean slate between tests. */
  async wipe(): Promise<void> {
    const path = `/emulator/v1/projects/${this.projectId}/databases/(default)/documents`;
    const response = await httpRequest('DELETE', this.host, path, 10_000);
    if (response.status !== 200) {
      throw new Error(`Firestore emulator wipe failed: HTTP ${response.status} ${response.body.slice(0, 200)}`);
    }
  }

  /**
   * Stops java and its launcher (SIGTERM, then SIGKILL to the whole group after 5 s) and
   * resolves when no live process of the group is left. Safe to call more than once.
   */
  stop(): Promise<void> {
    this.stopping ??= this.terminate();
    return this.stopping;
  }

  private async terminate(): Promise<void> {
    // java first, not the whole group: the script is waiting on java, so it reaps it and exits,
    // and we reap the script. A group signal would kill the script at once and orphan java,
    // whose zombie then lingers until init gets round to reaping it.
    const children = (liveMembers(this.pgid) ?? []).filter((pid) => pid !== this.pgid);
    if (children.length === 0) signalGroup(this.pgid, 'SIGTERM');
    for (const pid of children) signalProcess(pid, 'SIGTERM');
    if (!(await waitFor(() => !groupHasLiveMembers(this.pgid), STOP_GRACE_MS))) {
      signalGroup(this.pgid, 'SIGKILL');
      if (!(await waitFor(() => !groupHasLiveMembers(this.pgid), KILL_WAIT_MS))) {
        throw new Error(`Firestore emulator process group ${this.pgid} still running after SIGKILL`);
      }
    }
    runningGroups.delete(this.pgid);
    await this.exited;
  }
}

/** Groups started and not yet stopped, killed if this process exits without stopping them. */
const runningGroups = new Set<number>();
let cleanupInstalled = false;

/**
 * A crashed or interrupted test run must not leave a JVM behind. 'exit' covers process.exit and
 * uncaught exceptions; the signals cover Ctrl-C and kill, which skip 'exit'. The emulator's own
 * group does not receive the terminal's Ctrl-C, so nobody else would stop it.
 */
function installCleanupHandlers(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', killAllGroups);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAllGroups();
      // Alone, we would swallow the signal: restore the default action and raise it again.
      if (process.listenerCount(signal) === 1) {
        process.removeListener(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}

function killAllGroups(): void {
  for (const pgid of runningGroups) signalGroup(pgid, 'SIGKILL');
  runningGroups.clear();
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  signalProcess(-pgid, signal);
}

function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (error: unknown) {
    if (errorCode(error) !== 'ESRCH') throw error;
  }
}

/**
 * True while a process of the group is alive. Zombies that init has not reaped yet (java
 * orphaned by a SIGKILL to the group) still make kill(-pgid, 0) succeed but hold nothing, so
 * where /proc can tell, they do not count.
 */
function groupHasLiveMembers(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (error: unknown) {
    if (errorCode(error) === 'ESRCH') return false;
    throw error;
  }
  const members = liveMembers(pgid);
  return members === undefined || members.length > 0;
}

/** Pids of the group's processes that are not zombies; undefined where there is no /proc. */
function liveMembers(pgid: number): number[] | undefined {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return undefined;
  }
  return pids.map(Number).filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Fields after the parenthesised command: state, ppid, pgrp, ...
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return Number(pgrp) === pgid && state !== 'Z';
    } catch {
      return false; // exited while we looked
    }
  });
}

async function findEmulatorScript(sdkRoot: string | undefined): Promise<string> {
  if (sdkRoot !== undefined) {
    const script = join(sdkRoot, EMULATOR_SCRIPT);
    if (!isExecutable(script)) throw new Error(`Firestore emulator not found at ${script}: ${INSTALL_HINT}, or fix sdkRoot`);
    return script;
  }
  const gcloud = await commandPath('gcloud');
  if (gcloud === undefined) {
    throw new Error(
      'Firestore emulator not found: the Google Cloud CLI (gcloud) is not on PATH. Install it ' +
        '(apt-get install google-cloud-cli) and ' + INSTALL_HINT + ', or pass sdkRoot',
    );
  }
  // A packaged gcloud is a link to SDK_ROOT/bin/gcloud: trying that first skips gcloud's
  // 1-2 s Python start-up on every test run.
  const linked = join(dirname(dirname(realpathSync(gcloud))), EMULATOR_SCRIPT);
  if (isExecutable(linked)) return linked;
  const script = join(await gcloudSdkRoot(), EMULATOR_SCRIPT);
  if (!isExecutable(script)) throw new Error(`Firestore emulator not found at ${script}: ${INSTALL_HINT}`);
  return script;
}

async function gcloudSdkRoot(): Promise<string> {
  // check_gce_metadata=false: with no cached answer gcloud probes the GCE metadata server to
  // fill in the account, and no traffic may leave this machine.
  const { stdout } = await run('sh', [
    '-c',
    'CLOUDSDK_CORE_CHECK_GCE_METADATA=false exec gcloud info --format="value(installation.sdk_root)"',
  ]);
  const root = stdout.trim();
  if (root === '') throw new Error(`Firestore emulator not found: gcloud did not report its SDK root; ${INSTALL_HINT}`);
  return root;
}

async function requireJava(): Promise<void> {
  // The launcher runs ${JAVA:-java}; let the shell expand it the same way.
  const { code } = await run('sh', ['-c', 'command -v "${JAVA:-java}"']);
  if (code !== 0) {
    throw new Error(
      'Firestore emulator cannot start: Java not found on PATH (or $JAVA). ' +
        'It needs Java 17: apt-get install openjdk-17-jre-headless',
    );
  }
}

async function commandPath(name: string): Promise<string | undefined> {
  const { code, stdout } = await run('sh', ['-c', 'command -v "$1"', 'sh', name]);
  const path = stdout.trim();
  return code === 0 && path !== '' ? path : undefined;
}

function run(file: string, args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 30_000 }, (error, stdout) => {
      if (error === null) resolve({ code: 0, stdout });
      else if (typeof error.code === 'number') resolve({ code: error.code, stdout });
      else reject(error);
    });
  });
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * A port the OS considers free on loopback. Another process could take it before the emulator
 * binds; the emulator then exits and start() reports its output.
 */
function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no loopback port assigned'))));
    });
  });
}

/** Keeps reading both pipes (a full pipe would block the JVM) and returns the last lines read. */
function keepLastLines(child: ChildProcess, count: number): () => string {
  const lines: string[] = [];
  const partial = { stdout: '', stderr: '' };
  for (const stream of ['stdout', 'stderr'] as const) {
    child[stream]?.setEncoding('utf8');
    child[stream]?.on('data', (chunk: string) => {
      const parts = (partial[stream] + chunk).split('\n');
      partial[stream] = parts.pop() ?? '';
      lines.push(...parts);
      if (lines.length > count) lines.splice(0, lines.length - count);
    });
  }
  return () => [...lines, partial.stdout, partial.stderr].filter((line) => line.trim() !== '').slice(-count).join('\n');
}

interface ExitWatch {
  promise: Promise<{ reason: string }>;
  result: { reason: string } | undefined;
}

function watchExit(child: ChildProcess): ExitWatch {
  const watch: ExitWatch = {
    result: undefined,
    promise: new Promise((resolve) => {
      const done = (reason: string): void => {
        watch.result ??= { reason };
        resolve(watch.result);
      };
      child.once('error', (error) => done(error.message));
      child.once('exit', (code, signal) => done(signal ? `killed by ${signal}` : `exit code ${code}`));
    }),
  };
  return watch;
}

async function isReady(host: string): Promise<boolean> {
  try {
    const response = await httpRequest('GET', host, '/', 1000);
    return response.status === 200 && response.body.trim() === 'Ok';
  } catch {
    return false; // not listening yet
  }
}

function httpRequest(method: string, host: string, path: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // agent: false so no keep-alive socket outlives the request and holds the event loop.
    const request = http.request(`http://${host}${path}`, { method, agent: false, timeout: timeoutMs }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`${method} http://${host}${path} timed out after ${timeoutMs} ms`)));
    request.on('error', reject);
    request.end();
  });
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function errorCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
}
