import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isServiceError } from '../src/client/error-info';
import { TokenBrokerClient } from '../src/client/token-broker-client';
import { LocalOAuthServer } from '../src/local/oauth-server';
import { brokerProcessEnv } from './support/broker-process-env';
import { capturedLogLines, issuedSecrets } from './support/log-capture';
import { APP_CLIENT_ID, SIGN_IN_SCOPES } from './support/stack';
import { waitFor } from './support/wait-for';

const ROOT = path.resolve(__dirname, '..');

/** The broker as production runs it: src/main.ts in its own process, configured by environment. */
class BrokerProcess {
  readonly exited: Promise<{ code: number | null; at: number }>;
  private output = '';

  private constructor(readonly child: ChildProcessWithoutNullStreams) {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      this.output += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      this.output += chunk;
    });
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve({ code, at: Date.now() })));
  }

  static async start(env: Record<string, string>): Promise<{ broker: BrokerProcess; port: number }> {
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', 'src/main.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, METADATA_SERVER_DETECTION: 'none', ...env },
    });
    const broker = new BrokerProcess(child);
    await waitFor(() => /"event":"started"/.test(broker.output) || child.exitCode !== null, 'the broker to start', 30_000);
    const port = /"event":"started","port":(\d+)/.exec(broker.output)?.[1];
    if (!port) throw new Error(`the broker did not start: ${broker.output}`);
    return { broker, port: Number(port) };
  }

  /** Its log lines, which join the suite-wide leak check. */
  logLines(): string[] {
    return this.output.split('\n').filter((line) => line.startsWith('{'));
  }
}

describe('shutdown on SIGTERM (spawned broker process)', function () {
  this.timeout(60_000);
  let google: LocalOAuthServer;
  let dir: string;
  let env: Record<string, string>;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'tokenbroker-shutdown-'));
    ({ google, env } = await brokerProcessEnv(dir, 'shutdown'));
  });
  after(async () => {
    for (const secret of google.issuedSecrets()) issuedSecrets.add(secret);
    await google.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    google.clearFaults();
    google.resetStats();
  });

  function mintCodes(n: number): string[] {
    return Array.from({ length: n }, (_, i) => {
      const code = google.mintCode({ sub: `2${String(Date.now())}${String(i).padStart(4, '0')}`, email: `u${i}@example.com` }, { scopes: SIGN_IN_SCOPES, appClientId: APP_CLIENT_ID });
      issuedSecrets.add(code);
      return code;
    });
  }

  it('answers every one of 100 calls in flight, then exits 0 well inside 10 s', async () => {
    const { broker, port } = await BrokerProcess.start({ ...env, TOKENBROKER_SHUTDOWN_GRACE_MS: '8000' });
    const client = new TokenBrokerClient(`127.0.0.1:${port}`);
    try {
      google.injectFault({ endpoint: 'token', kind: 'delay', ms: 500, times: 100 });
      const calls = mintCodes(100).map((authCode) => client.exchangeCode({ authCode }));
      await waitFor(() => google.stats().token === 100, 'all 100 exchanges to reach Google');
      const signalled = Date.now();
      broker.child.kill('SIGTERM');
      const results = await Promise.allSettled(calls);
      const exit = await broker.exited;
      capturedLogLines.push(...broker.logLines());
      expect(results.filter((r) => r.status === 'rejected')).to.deep.equal([]);
      expect(exit.code).to.equal(0);
      expect(exit.at - signalled).to.be.below(10_000);
      expect(broker.logLines().some((line) => line.includes('"event":"stopped"'))).to.equal(true);
    } finally {
      client.close();
      broker.child.kill('SIGKILL');
    }
  });

  it('cuts calls still running at the grace deadline with UNAVAILABLE and refuses new ones', async () => {
    const { broker, port } = await BrokerProcess.start({ ...env, TOKENBROKER_SHUTDOWN_GRACE_MS: '300' });
    const client = new TokenBrokerClient(`127.0.0.1:${port}`);
    try {
      google.injectFault({ endpoint: 'token', kind: 'delay', ms: 5000, times: 3 });
      const calls = mintCodes(3).map((authCode) => client.exchangeCode({ authCode }));
      await waitFor(() => google.stats().token === 3, 'the exchanges to reach Google');
      broker.child.kill('SIGTERM');
      const results = await Promise.allSettled(calls);
      for (const result of results) {
        expect(result.status).to.equal('rejected');
        const err = (result as PromiseRejectedResult).reason as unknown;
        expect(isServiceError(err) && err.code).to.equal(status.UNAVAILABLE);
      }
      const late = await client.getProfile({ userId: '123' }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(isServiceError(late) && late.code).to.equal(status.UNAVAILABLE);
      expect((await broker.exited).code).to.equal(0);
      capturedLogLines.push(...broker.logLines());
    } finally {
      client.close();
      broker.child.kill('SIGKILL');
    }
  });
});
