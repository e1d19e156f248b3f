import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const DEV_STACK = path.join(ROOT, 'src', 'local', 'dev-stack.ts');
const CLI = path.join(ROOT, 'src', 'cli', 'main.ts');

/** A child process of the test with everything it printed so far. */
interface Watched {
  child: ChildProcess;
  output: { stdout: string; stderr: string };
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, METADATA_SERVER_DETECTION: 'none', ...extra };
  delete env.TOKENBROKER_ADDRESS;
  return env;
}

/** Starts `node --require tsx/cjs <script> args`, as `npm run dev` / `npm run cli` would, and watches it. */
function start(script: string, args: string[], env: Record<string, string>): Watched {
  const child = spawn(process.execPath, ['--require', 'tsx/cjs', script, ...args], {
    cwd: ROOT,
    env: baseEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = { stdout: '', stderr: '' };
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output.stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output.stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  return { child, output, exited };
}

/** Resolves with the exit of `watched`, or kills it and fails after `ms`. */
async function exitWithin(watched: Watched, ms: number, what: string) {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      watched.child.kill('SIGKILL');
      reject(new Error(`${what} did not exit within ${ms} ms\nstdout: ${watched.output.stdout}\nstderr: ${watched.output.stderr}`));
    }, ms);
  });
  try {
    return await Promise.race([watched.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs the CLI to completion (bounded) with the dev directory of the stack under test. */
async function cli(args: string[], devDir: string) {
  const run = start(CLI, args, { TOKENBROKER_DEV_DIR: devDir });
  const { code } = await exitWithin(run, 15_000, `tokenbroker ${args[0]}`);
  return { code, ...run.output };
}

/** Waits until `watched` printed `text` on stdout; fails if it exits first or time runs out. */
async function waitForOutput(watched: Watched, text: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  let exited = false;
  void watched.exited.then(() => (exited = true));
  while (!watched.output.stdout.includes(text)) {
    if (exited || Date.now() > deadline) {
      throw new Error(`no "${text}" (${exited ? 'exited' : 'timed out'})\nstdout: ${watched.output.stdout}\nstderr: ${watched.output.stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Live (non-zombie) processes whose process group is `pgid`. */
function liveGroupMembers(pgid: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return Number(pgrp) === pgid && state !== 'Z';
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** The process group of the Firestore emulator launcher `parentPid` started (it leads its own group). */
function emulatorGroupOf(parentPid: number): number | undefined {
  for (const name of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const [, ppid, pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (Number(ppid) === parentPid && cmdline.includes('cloud_firestore_emulator')) return Number(pgrp);
    } catch {
      // exited while we looked
    }
  }
  return undefined;
}

function refusesConnections(hostPort: string): Promise<boolean> {
  const [host, port] = [hostPort.slice(0, hostPort.lastIndexOf(':')), Number(hostPort.slice(hostPort.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('dev stack (npm run dev)', function () {
  this.timeout(120_000);
  let dir: string;
  let stack: Watched | undefined;
  let emulatorGroup: number | undefined;

  beforeEach(() => {
    dir = path.join(mkdtempSync(path.join(tmpdir(), 'tokenbroker-dev-')), '.dev');
  });

  afterEach(() => {
    // Only after a failure is anything left to kill.
    if (stack && stack.child.exitCode === null && stack.child.signalCode === null) stack.child.kill('SIGKILL');
    if (emulatorGroup !== undefined && liveGroupMembers(emulatorGroup).length > 0) process.kill(-emulatorGroup, 'SIGKILL');
    rmSync(path.dirname(dir), { recursive: true, force: true });
    stack = undefined;
    emulatorGroup = undefined;
  });

  it('starts everything, serves the README walk-through, and stops everything on SIGINT', async () => {
    stack = start(DEV_STACK, [], { PORT: '0', TOKENBROKER_DEV_DIR: dir });
    await waitForOutput(stack, 'Ctrl-C stops everything.', 60_000);
    const out = stack.output.stdout;
    expect(out).to.include('TokenBroker dev stack is up.');
    const address = /^ {2}broker {5}(127\.0\.0\.1:\d+) \(gRPC, plaintext\)$/m.exec(out)?.[1];
    const oauthUrl = /^ {2}google {5}(http:\/\/127\.0\.0\.1:\d+) \(local stand-in\)$/m.exec(out)?.[1];
    const firestore = /^ {2}firestore {2}(127\.0\.0\.1:\d+) \(emulator\)$/m.exec(out)?.[1];
    expect([address, oauthUrl, firestore].every((v) => v !== undefined), out).to.equal(true);
    for (const command of ['dev-signin --email alice@example.com', 'token --user <user_id printed above>', 'profile --user <user_id>', 'health']) {
      expect(out).to.include(`npm run cli -- ${command}`);
    }
    expect(JSON.parse(readFileSync(path.join(dir, 'stack.json'), 'utf8'))).to.deep.equal({ address, oauthUrl, pid: stack.child.pid });
    expect(statSync(dir).mode & 0o777).to.equal(0o700);
    const clientJson = readFileSync(path.join(dir, 'oauth-client.json'), 'utf8');
    const keysetJson = readFileSync(path.join(dir, 'keyset.json'), 'utf8');
    for (const file of ['oauth-client.json', 'keyset.json', 'stack.json']) {
      expect(statSync(path.join(dir, file)).mode & 0o777, file).to.equal(0o600);
    }
    const clientSecret = (JSON.parse(clientJson) as { installed: { client_id: string; client_secret: string } }).installed;
    expect(clientSecret.client_id).to.equal('tokenbroker-dev.apps.googleusercontent.com');
    const key = (JSON.parse(keysetJson) as { primary: string; keys: { id: string; key: string }[] }).keys[0]!.key;
    expect(Buffer.from(key, 'base64')).to.have.length(32);
    emulatorGroup = emulatorGroupOf(stack.child.pid!);
    expect(emulatorGroup, 'emulator launcher of the dev stack').to.be.a('number');

    // The README walk-through: the CLI finds the stack through its dev directory alone.
    const signin = await cli(['dev-signin', '--email', 'alice@example.com'], dir);
    expect(signin.code, signin.stderr).to.equal(0);
    const userId = /^user_id\s+(\d+)$/m.exec(signin.stdout)?.[1];
    expect(userId, signin.stdout).to.match(/^\d+$/);
    expect(signin.stdout).to.match(/^created\s+true$/m);

    const token = await cli(['token', '--user', userId!], dir);
    expect(token.code, token.stderr).to.equal(0);
    const accessToken = /^access_token\s+(\S+)$/m.exec(token.stdout)?.[1];
    expect(accessToken).to.match(/^ya29\./);

    const profile = await cli(['profile', '--user', userId!], dir);
    expect(profile.code, profile.stderr).to.equal(0);
    expect(profile.stdout).to.match(/^email\s+alice@example\.com \(verified\)$/m);

    const health = await cli(['health'], dir);
    expect(health.code, health.stderr).to.equal(0);
    expect(health.stdout.trim()).to.equal('SERVING');

    // A second stack from the same directory would steal the record: it refuses instead.
    const second = start(DEV_STACK, [], { PORT: '0', TOKENBROKER_DEV_DIR: dir });
    const secondExit = await exitWithin(second, 20_000, 'second dev stack');
    expect(secondExit.code).to.equal(1);
    expect(second.output.stderr).to.include('another dev stack').and.include(String(stack.child.pid));

    stack.child.kill('SIGINT');
    const exit = await exitWithin(stack, 20_000, 'dev stack after SIGINT');
    expect(exit, stack.output.stderr).to.deep.equal({ code: 0, signal: null });
    expect(stack.output.stdout).to.include('Dev stack stopped.');
    expect(liveGroupMembers(emulatorGroup!), 'emulator processes left running').to.deep.equal([]);
    expect(await refusesConnections(firestore!), 'emulator port still open').to.equal(true);
    expect(await refusesConnections(address!), 'broker port still open').to.equal(true);
    expect(readdirSync(dir), 'files left in the dev directory').to.deep.equal([]);

    const printed = stack.output.stdout + stack.output.stderr;
    for (const secret of [clientSecret.client_secret, key, accessToken!]) {
      expect(printed.includes(secret), 'a secret in the dev stack output').to.equal(false);
    }
    for (const line of stack.output.stdout.split('\n').filter((l) => l.startsWith('{'))) {
      expect(() => JSON.parse(line), line).to.not.throw();
    }
  });

  it('exits 1 naming what is missing when the emulator cannot be found, leaving nothing behind', async () => {
    // A PATH with a shell but no gcloud.
    const bin = path.join(path.dirname(dir), 'bin');
    mkdirSync(bin);
    symlinkSync('/bin/sh', path.join(bin, 'sh'));
    stack = start(DEV_STACK, [], { PORT: '0', TOKENBROKER_DEV_DIR: dir, PATH: bin });
    const exit = await exitWithin(stack, 20_000, 'dev stack without gcloud');
    expect(exit.code).to.equal(1);
    expect(stack.output.stderr).to.include('TokenBroker dev stack failed to start: Firestore emulator not found');
    expect(existsSync(path.join(dir, 'stack.json'))).to.equal(false);
  });
});
