/**
 * Child processes the bench starts (brokers, the echo and naive servers):
 * spawned with a clean environment, tracked, and always stopped, by their
 * own pid, also when the bench fails or is interrupted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { isServing } from './raw-grpc';

const running = new Set<ManagedChild>();
let exitHookInstalled = false;

/** What a child is started with. */
export interface ChildSpec {
  name: string;
  command: string;
  args: string[];
  /** Added to the sanitized environment of the bench. */
  env: Record<string, string>;
  /** 'pipe': the bench reads stdout (as a log collector would); 'devnull': stdout is /dev/null. */
  stdout: 'pipe' | 'devnull';
  cwd?: string;
}

/**
 * The bench's environment without anything that could point a Google client
 * at a real project, credentials or endpoint, plus METADATA_SERVER_DETECTION=none.
 */
export function cleanEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined) continue;
    if (name.startsWith('GOOGLE_') || name.startsWith('FIRESTORE_') || name.startsWith('TOKENBROKER_') || name.startsWith('GCLOUD_') || name.startsWith('CLOUDSDK_')) continue;
    if (name === 'NODE_OPTIONS' || name === 'PORT') continue;
    env[name] = value;
  }
  return { ...env, METADATA_SERVER_DETECTION: 'none', ...extra };
}

/** A port the OS considers free on 127.0.0.1 (picked by listening on port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

const NEWLINE = 0x0a;
const NEWLINE_BYTES = Buffer.from('\n');
const AUDIT_MARKER = Buffer.from('"event":"token_issued"');

/** How often `needle` occurs in `haystack` (native search, no decoding). */
function occurrences(haystack: Buffer, needle: Buffer): number {
  let count = 0;
  for (let at = haystack.indexOf(needle); at !== -1; at = haystack.indexOf(needle, at + needle.length)) count += 1;
  return count;
}

/** The fields of a /proc stat line after the command (the state first); the command may hold spaces and parentheses. */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** utime + stime (fields 14 and 15 of stat, 12 and 13 after the command) in ms; USER_HZ is 100 on Linux. */
function cpuMsOf(fields: readonly string[]): number {
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/**
 * CPU time (user + system) so far of the live processes of group `pgid`, in
 * ms: the Firestore emulator's JVM and its launcher, for one.
 */
export function processGroupCpuMs(pgid: number): number {
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let fields: string[];
    try {
      fields = statFields(readFileSync(`/proc/${entry}/stat`, 'utf8'));
    } catch {
      continue; // exited since the listing
    }
    if (Number(fields[2]) === pgid) total += cpuMsOf(fields);
  }
  return total;
}

export class ManagedChild {
  /** Lines on stdout containing "event":"token_issued" (the broker's audit line). */
  tokenIssuedLines = 0;
  /** stdout bytes read. */
  stdoutBytes = 0;
  private readonly recent: string[] = [];
  private readonly stderrTail: string[] = [];
  private readonly lineWaiters = new Set<(line: string) => void>();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private stopping: Promise<void> | undefined;

  private constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    // Reading the service's stdout must cost this process (which shares the
    // machine's cores with what it measures) as little as possible: audit
    // lines are counted in the raw bytes, and only chunks holding other
    // lines are decoded and split.
    let partial = Buffer.alloc(0);
    proc.stdout?.on('data', (chunk: Buffer) => {
      this.stdoutBytes += chunk.length;
      const data = partial.length > 0 ? Buffer.concat([partial, chunk]) : chunk;
      const end = data.lastIndexOf(NEWLINE) + 1;
      partial = Buffer.from(data.subarray(end));
      if (end === 0) return;
      const complete = data.subarray(0, end);
      const audit = occurrences(complete, AUDIT_MARKER);
      this.tokenIssuedLines += audit;
      if (audit === occurrences(complete, NEWLINE_BYTES)) return;
      for (const line of complete.toString('utf8').split('\n')) {
        if (line.length === 0 || line.includes('"event":"token_issued"')) continue;
        this.keep(this.recent, line);
        for (const waiter of this.lineWaiters) waiter(line);
      }
    });
    let errPartial = '';
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (chunk: string) => {
      const lines = (errPartial + chunk).split('\n');
      errPartial = lines.pop() ?? '';
      for (const line of lines) this.keep(this.stderrTail, line);
    });
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        running.delete(this);
        resolve(this.exitInfo);
      });
    });
  }

  /** Starts `spec`; the child is tracked until it exits. */
  static start(spec: ChildSpec): ManagedChild {
    installExitHook();
    const devnull = spec.stdout === 'devnull' ? openSync('/dev/null', 'w') : undefined;
    const proc = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      env: cleanEnv(spec.env),
      stdio: ['ignore', devnull ?? 'pipe', 'pipe'],
    });
    if (devnull !== undefined) closeSync(devnull);
    const child = new ManagedChild(spec.name, proc);
    running.add(child);
    proc.once('error', () => undefined);
    return child;
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  get hasExited(): boolean {
    return this.exitInfo !== undefined;
  }

  /** Last lines of stdout (audit lines left out) and stderr, for error messages. */
  diagnostics(): string {
    return [...this.recent.slice(-10), ...this.stderrTail.slice(-10)].join('\n');
  }

  /** Calls `listener` with every later stdout line (audit lines left out); returns a function that removes it. */
  onLine(listener: (line: string) => void): () => void {
    this.lineWaiters.add(listener);
    return () => this.lineWaiters.delete(listener);
  }

  /** Resolves with the first stdout line (from now on) that `match` accepts. */
  waitForLine(match: (line: string) => boolean, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.lineWaiters.delete(waiter);
        reject(new Error(`${this.name}: expected output not seen within ${timeoutMs} ms\n${this.diagnostics()}`));
      }, timeoutMs);
      const waiter = (line: string) => {
        if (!match(line)) return;
        clearTimeout(timer);
        this.lineWaiters.delete(waiter);
        resolve(line);
      };
      this.lineWaiters.add(waiter);
      void this.exited.then((info) => {
        if (!this.lineWaiters.has(waiter)) return;
        clearTimeout(timer);
        this.lineWaiters.delete(waiter);
        reject(new Error(`${this.name} exited (${info.code ?? info.signal}) before it was ready\n${this.diagnostics()}`));
      });
    });
  }

  /** Resident set size in KiB, from /proc. */
  rssKiB(): number {
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
    if (!match?.[1]) throw new Error(`${this.name}: no VmRSS in /proc/${this.pid}/status`);
    return Number(match[1]);
  }

  /** CPU time (user + system) the process used so far, in ms. */
  cpuMs(): number {
    return cpuMsOf(statFields(readFileSync(`/proc/${this.pid}/stat`, 'utf8')));
  }

  /** CPU time of the main thread only (the JavaScript event loop), in ms. */
  mainThreadCpuMs(): number {
    return cpuMsOf(statFields(readFileSync(`/proc/${this.pid}/task/${this.pid}/stat`, 'utf8')));
  }

  /** SIGTERM (or `signal`), then SIGKILL after `graceMs`; resolves once exited. */
  stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
    this.stopping ??= (async () => {
      if (this.hasExited) return;
      this.signal(signal);
      const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    })();
    return this.stopping;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.hasExited || this.pid < 0) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // already gone
    }
  }

  private keep(buffer: string[], line: string): void {
    if (line.trim() === '') return;
    buffer.push(line);
    if (buffer.length > 50) buffer.splice(0, buffer.length - 50);
  }
}

/** Stops every child still running. */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...running].map((child) => child.stop('SIGTERM', 5000)));
}

/** A bench killed or crashing must not leave its children behind: SIGKILL each, by pid. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) child.signal('SIGKILL');
  });
}

/** Polls grpc.health.v1 on `port` until SERVING; rejects if `child` exits or `timeoutMs` passes. */
export async function waitServing(child: ManagedChild, port: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (child.hasExited) throw new Error(`${child.name} exited before serving\n${child.diagnostics()}`);
    if (await isServing(port, 500).catch(() => false)) return;
    if (performance.now() > deadline) throw new Error(`${child.name} not SERVING within ${timeoutMs} ms\n${child.diagnostics()}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
