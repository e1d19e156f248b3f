import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { waitFor } from './wait-for';

/** What a finished command printed, and how it ended. */
export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  ms: number;
}

/**
 * Runs a command asynchronously (the test process's own servers keep
 * answering meanwhile) in its own process group; after `timeoutMs` the whole
 * group is killed and the promise rejects. Rejects too when it exits non-zero.
 */
export async function runCommand(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<CommandResult> {
  const started = Date.now();
  const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    if (child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }, options.timeoutMs);
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c, s) => resolve({ code: c, signal: s }));
  }).finally(() => clearTimeout(timer));
  const result = { code, signal, output, ms: Date.now() - started };
  const shown = `${command} ${args.join(' ')}`;
  if (timedOut) throw new Error(`${shown} did not finish within ${options.timeoutMs} ms:\n${output.slice(-4000)}`);
  if (code !== 0) throw new Error(`${shown} failed (exit ${code ?? signal ?? '?'}):\n${output.slice(-4000)}`);
  return result;
}

/** A long-running child process whose output is kept, e.g. a broker started as its image would start it. */
export class SpawnedProcess {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  private collected = '';

  constructor(readonly child: ChildProcessWithoutNullStreams) {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (this.collected += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (this.collected += chunk));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
  }

  static spawn(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): SpawnedProcess {
    return new SpawnedProcess(spawn(command, args, { cwd: options.cwd, env: options.env }));
  }

  /** Everything it printed so far, stdout and stderr. */
  get output(): string {
    return this.collected;
  }

  /** Its JSON log lines. */
  logLines(): string[] {
    return this.collected.split('\n').filter((line) => line.startsWith('{'));
  }

  /** Waits for the broker's `"event":"started"` line and returns the port it names; rejects if it exits first. */
  async startedPort(timeoutMs: number): Promise<number> {
    await waitFor(() => /"event":"started"/.test(this.collected) || this.child.exitCode !== null || this.child.signalCode !== null, 'the broker to start', timeoutMs);
    const port = /"event":"started","port":(\d+)/.exec(this.collected)?.[1];
    if (!port) throw new Error(`the broker did not start:\n${this.collected.slice(-4000)}`);
    return Number(port);
  }

  /** Waits for it to exit; SIGKILLs it and rejects after `timeoutMs`. */
  async exit(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        this.kill();
        reject(new Error(`the process did not exit within ${timeoutMs} ms:\n${this.collected.slice(-4000)}`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILLs it if it still runs. */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}
