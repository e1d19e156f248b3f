import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { mutualTlsCredentials } from '../src/client/caller-credentials';
import { TokenBrokerClient } from '../src/client/token-broker-client';
import { connectionFor } from '../src/cli/connection';
import { issuedSecrets, leakedSecrets } from './support/log-capture';
import { SIGN_IN_SCOPES, TestStack } from './support/stack';
import { TestPki } from './support/test-pki';

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'src', 'cli', 'main.ts');
const DRIVE = 'https://www.googleapis.com/auth/drive.readonly';
const OPS = 'ops@tb-test.iam.gserviceaccount.com';
const READER = 'reader@tb-test.iam.gserviceaccount.com';
const OPS_SPIFFE = 'spiffe://cluster.local/ns/ops/sa/ops';

/** What one run of the CLI did. */
interface CliRun {
  args: string[];
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Every run, for the leak check at the end. */
const runs: CliRun[] = [];

/**
 * Runs the CLI as a user would (a child process through tsx), bounded in time.
 * Starts from an environment with no TOKENBROKER_ADDRESS and an empty dev
 * directory, so a developer's own running dev stack cannot interfere.
 */
function cli(args: string[], env: Record<string, string> = {}, timeoutMs = 15_000): Promise<CliRun> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, METADATA_SERVER_DETECTION: 'none', TOKENBROKER_DEV_DIR: emptyDevDir };
  delete childEnv.TOKENBROKER_ADDRESS;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', CLI, ...args], {
      cwd: ROOT,
      env: { ...childEnv, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${timeoutMs} ms]`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      const run = { args, code, stdout, stderr };
      runs.push(run);
      resolve(run);
    });
  });
}

/** Parses the one JSON object the CLI printed with --json. */
function json(run: CliRun): Record<string, unknown> {
  const lines = run.stdout.trim().split('\n');
  expect(lines, `stdout of ${run.args.join(' ')}`).to.have.length(1);
  return JSON.parse(lines[0]!) as Record<string, unknown>;
}

/** Expects `run` to have exited with `code`, showing its output when it did not. */
function expectExit(run: CliRun, code: number): void {
  expect(run.code, `exit of ${run.args.join(' ')}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`).to.equal(code);
}

let emptyDevDir: string;

describe('CLI (tokenbroker)', function () {
  this.timeout(60_000);
  let stack: TestStack;
  let address: string;
  let devDir: string;
  let userId: string;

  before(async () => {
    emptyDevDir = mkdtempSync(path.join(tmpdir(), 'tokenbroker-cli-empty-'));
    devDir = mkdtempSync(path.join(tmpdir(), 'tokenbroker-cli-dev-'));
    stack = await TestStack.start();
    address = `127.0.0.1:${stack.app.port}`;
  });

  after(async () => {
    await stack?.close();
    rmSync(emptyDevDir, { recursive: true, force: true });
    rmSync(devDir, { recursive: true, force: true });
  });

  describe('dev-signin', () => {
    it('signs a test user in at the local Google and prints the exchange', async () => {
      const run = await cli(['dev-signin', '--oauth-url', stack.google.url, '--address', address, '--email', 'carol.jones@example.com']);
      expectExit(run, 0);
      expect(run.stderr).to.equal('');
      const id = /^user_id\s+(\d+)$/m.exec(run.stdout)?.[1];
      expect(id).to.match(/^1\d{20}$/);
      userId = id!;
      expect(run.stdout).to.match(/^created\s+true$/m);
      expect(run.stdout).to.match(new RegExp(`^scopes\\s+${[...SIGN_IN_SCOPES].sort().join(' ').replace(/[./]/g, '\\$&')}$`, 'm'));
      expect(run.stdout).to.match(/^email\s+carol\.jones@example\.com \(verified\)$/m);
      expect(run.stdout).to.match(/^name\s+Carol Jones$/m);
    });

    it('signs the same user in again for the same email (--json)', async () => {
      const run = await cli(['dev-signin', '--json', '--oauth-url', stack.google.url, '--address', address, '--email', 'carol.jones@example.com']);
      expectExit(run, 0);
      expect(json(run)).to.deep.include({ user_id: userId, created: false, granted_scopes: [...SIGN_IN_SCOPES].sort() });
      expect(json(run).profile).to.deep.include({ user_id: userId, email: 'carol.jones@example.com', email_verified: true, name: 'Carol Jones' });
    });

    it('takes --sub, --name, --scope and --consent', async () => {
      const sub = stack.newUser().sub;
      const run = await cli([
        'dev-signin', '--json', '--oauth-url', stack.google.url, '--address', address,
        '--email', 'x@example.com', '--sub', sub, '--name', 'Ann Lee', '--scope', 'openid', '--scope', 'email', '--consent',
      ]);
      expectExit(run, 0);
      expect(json(run)).to.deep.include({ user_id: sub, created: true, granted_scopes: ['email', 'openid'] });
      expect(json(run).profile).to.deep.include({ name: 'Ann Lee', given_name: 'Ann', family_name: 'Lee' });
    });

    it('finds the broker and the local Google through the dev stack record, and TOKENBROKER_ADDRESS wins over it', async () => {
      // The test process stands in for a running dev stack: the record names a live pid.
      writeFileSync(path.join(devDir, 'stack.json'), JSON.stringify({ address, oauthUrl: stack.google.url, pid: process.pid }));
      const found = await cli(['dev-signin', '--json', '--email', 'carol.jones@example.com'], { TOKENBROKER_DEV_DIR: devDir });
      expectExit(found, 0);
      expect(json(found)).to.include({ user_id: userId });

      const overridden = await cli(['health'], { TOKENBROKER_DEV_DIR: devDir, TOKENBROKER_ADDRESS: `127.0.0.1:${await closedPort()}` });
      expectExit(overridden, 3);
    });

    it('ignores a record left behind by a dev stack that is gone', async () => {
      writeFileSync(path.join(devDir, 'stack.json'), JSON.stringify({ address, oauthUrl: stack.google.url, pid: 2 ** 22 + 1 }));
      const run = await cli(['dev-signin'], { TOKENBROKER_DEV_DIR: devDir });
      expectExit(run, 2);
      expect(run.stderr).to.include('npm run dev');
    });

    it('refuses an OAuth URL off this machine, before sending anything', async () => {
      const run = await cli(['dev-signin', '--oauth-url', 'https://oauth2.googleapis.com', '--address', address]);
      expectExit(run, 2);
      expect(run.stderr).to.include('local development only').and.include('127.0.0.1, localhost or [::1]');
      const asJson = await cli(['dev-signin', '--json', '--oauth-url', 'http://10.0.0.1:8080', '--address', address]);
      expectExit(asJson, 2);
      expect(json(asJson)).to.have.nested.property('error.code', 'USAGE');
    });
  });

  describe('token', () => {
    it('prints the access token, its expiry and scopes', async () => {
      const run = await cli(['token', '--user', userId, '--address', address]);
      expectExit(run, 0);
      expect(run.stdout).to.match(/^access_token\s+ya29\.\S+$/m);
      expect(run.stdout).to.match(/^expires\s+\d{4}-\d\d-\d\dT\S+Z \(in \d+m \d+s\)$/m);
      expect(run.stdout).to.match(/^scopes\s+email /m);
    });

    it('narrows scopes and passes --min-ttl (--json)', async () => {
      const run = await cli(['token', '--json', '--user', userId, '--scope', DRIVE, '--min-ttl', '600', '--address', address]);
      expectExit(run, 0);
      const out = json(run);
      expect(out.access_token).to.match(/^ya29\./);
      expect(out.scopes).to.deep.equal([DRIVE]);
      expect(Date.parse(String(out.expire_time))).to.be.greaterThan(Date.now() + 600_000);
    });

    it('exits 1 with code, reason and message when the user is unknown', async () => {
      const unknown = stack.newUser().sub;
      const run = await cli(['token', '--user', unknown, '--address', address]);
      expectExit(run, 1);
      expect(run.stdout).to.equal('');
      expect(run.stderr.trim()).to.equal('NOT_FOUND USER_NOT_FOUND: no grant is stored for this user');

      const asJson = await cli(['token', '--json', '--user', unknown, '--address', address]);
      expectExit(asJson, 1);
      expect(asJson.stderr).to.equal('');
      expect(json(asJson)).to.deep.equal({
        error: { code: 'NOT_FOUND', reason: 'USER_NOT_FOUND', message: 'no grant is stored for this user' },
      });
    });

    it('shows the ErrorInfo metadata of SCOPE_NOT_GRANTED', async () => {
      const gmail = 'https://www.googleapis.com/auth/gmail.readonly';
      const run = await cli(['token', '--user', userId, '--scope', gmail, '--address', address]);
      expectExit(run, 1);
      expect(run.stderr).to.include('FAILED_PRECONDITION SCOPE_NOT_GRANTED:').and.include(`missingScopes: ${gmail}`);
    });
  });

  describe('profile', () => {
    it('prints the stored profile', async () => {
      const run = await cli(['profile', '--user', userId, '--address', address]);
      expectExit(run, 0);
      expect(run.stdout).to.match(new RegExp(`^user_id\\s+${userId}$`, 'm'));
      expect(run.stdout).to.match(/^email\s+carol\.jones@example\.com \(verified\)$/m);
    });

    it('prints it as JSON with the proto field names', async () => {
      const run = await cli(['profile', '--json', '--user', userId, '--address', address]);
      expectExit(run, 0);
      expect(json(run)).to.deep.equal({
        profile: {
          user_id: userId,
          email: 'carol.jones@example.com',
          email_verified: true,
          name: 'Carol Jones',
          given_name: 'Carol',
          family_name: 'Jones',
          picture_url: '',
          locale: '',
          hosted_domain: '',
        },
      });
    });

    it('exits 1 with INVALID_REQUEST for a malformed user ID', async () => {
      const run = await cli(['profile', '--json', '--user', 'abc', '--address', address]);
      expectExit(run, 1);
      expect(json(run)).to.have.nested.property('error.reason', 'INVALID_REQUEST');
    });
  });

  describe('status and revoke', () => {
    it('status prints the grant state, scopes and times, never a token', async () => {
      const run = await cli(['status', '--user', userId, '--address', address]);
      expectExit(run, 0);
      expect(run.stdout).to.match(/^state\s+ACTIVE$/m);
      expect(run.stdout).to.match(/^scopes\s+email /m);
      expect(run.stdout).to.match(/^created\s+\d{4}-\d\d-\d\dT\S+Z$/m);
      expect(run.stdout).to.match(/^signed_in\s+\d{4}-\d\d-\d\dT\S+Z$/m);
      expect(run.stdout).to.not.match(/ya29\.|1\/\//);

      const asJson = json(await cli(['status', '--json', '--user', userId, '--address', address]));
      expect(asJson).to.include({ state: 'ACTIVE', dead_reason: '' });
      expect(asJson.scopes).to.deep.equal([...SIGN_IN_SCOPES].sort());
      expect(asJson).to.have.all.keys('state', 'dead_reason', 'scopes', 'create_time', 'sign_in_time', 'last_refresh_time');
    });

    it('revoke revokes at Google and deletes the grant; a second revoke finds nothing', async () => {
      const user = stack.newUser();
      await stack.signIn(user);
      stack.google.resetStats();
      const first = await cli(['revoke', '--json', '--user', user.sub, '--address', address]);
      expectExit(first, 0);
      expect(json(first)).to.deep.equal({ was_stored: true, google_revocation: 'DONE' });
      expect(stack.google.stats().revoke).to.equal(1);
      expect(await stack.rawDocument(user.sub)).to.equal(undefined);

      const status = await cli(['status', '--user', user.sub, '--address', address]);
      expectExit(status, 1);
      expect(status.stderr.trim()).to.equal('NOT_FOUND USER_NOT_FOUND: no grant is stored for this user');

      const again = await cli(['revoke', '--user', user.sub, '--address', address]);
      expectExit(again, 0);
      expect(again.stdout).to.match(/^was_stored\s+false$/m).and.match(/^google_revocation\s+NOT_NEEDED /m);
      expect(stack.google.stats().revoke).to.equal(1);
    });

    it('revoke reports PENDING (exit 0) when Google cannot be reached; the grant is gone anyway', async () => {
      const user = stack.newUser();
      await stack.signIn(user);
      stack.google.injectFault({ endpoint: 'revoke', kind: 'status', status: 503, times: 10 });
      try {
        const run = await cli(['revoke', '--user', user.sub, '--address', address]);
        expectExit(run, 0);
        expect(run.stdout).to.match(/^google_revocation\s+PENDING \(.*retry-revocations.*\)$/m);
        expect(await stack.rawDocument(user.sub)).to.equal(undefined);
      } finally {
        stack.google.clearFaults();
      }
    });
  });

  describe('health', () => {
    it('exits 0 when SERVING, for the server and for the service', async () => {
      const [server, service] = await Promise.all([
        cli(['health', '--address', address]),
        cli(['health', '--json', '--service', 'tokenbroker.v1.TokenBrokerService', '--address', address]),
      ]);
      expectExit(server, 0);
      expect(server.stdout.trim()).to.equal('SERVING');
      expectExit(service, 0);
      expect(json(service)).to.deep.equal({ service: 'tokenbroker.v1.TokenBrokerService', status: 'SERVING' });
    });

    it('exits 1 for a service the server does not know', async () => {
      const run = await cli(['health', '--service', 'no.such.Service', '--address', address]);
      expectExit(run, 1);
      expect(run.stderr).to.match(/^NOT_FOUND: /);
    });
  });

  describe('exchange', () => {
    it('exchanges a code, and never prints it back in any failure', async () => {
      const user = stack.newUser();
      const code = stack.mintCode(user);
      const ok = await cli(['exchange', '--code', code, '--address', address]);
      expectExit(ok, 0);
      expect(ok.stdout).to.match(new RegExp(`^user_id\\s+${user.sub}$`, 'm'));

      const expired = stack.mintCode(stack.newUser(), { ttlSeconds: 0 });
      const failures = await Promise.all([
        cli(['exchange', '--code', expired, '--address', address]),
        cli(['exchange', '--json', `--code=${expired}`, '--address', address]),
        cli(['exchange', code, '--address', address]), // forgot --code
        cli([code]),
        cli(['exchange', '--code', code, '--bogus']),
        cli(['exchange', '--code', code, '--code', code]),
        cli(['exchange', '--code', code, '--address', 'not an address']),
        cli(['exchange', '--code', code, '--address', `127.0.0.1:${await closedPort()}`]),
      ]);
      expect(failures.map((r) => r.code)).to.deep.equal([1, 1, 2, 2, 2, 2, 2, 3]);
      expect(failures[0]!.stderr.trim()).to.equal('INVALID_ARGUMENT INVALID_AUTH_CODE: the auth code is invalid, expired or already used');
      expect(json(failures[1]!)).to.have.nested.property('error.reason', 'INVALID_AUTH_CODE');
      for (const run of failures) {
        expect(leakedSecrets(run.stdout + run.stderr), run.args.join(' ').replace(code, '<code>').replace(expired, '<expired>')).to.deep.equal([]);
      }
    });
  });

  describe('usage', () => {
    it('prints usage with exit codes for --help, and to stderr with exit 2 when no command is given', async () => {
      const [help, bare] = await Promise.all([cli(['--help']), cli([])]);
      expectExit(help, 0);
      expect(help.stdout).to.include('Usage: tokenbroker').and.include('Exit codes').and.include('dev-signin');
      expectExit(bare, 2);
      expect(bare.stderr).to.include('Usage: tokenbroker');
    });

    it('exits 2 for unknown commands and options, missing options and bad numbers', async () => {
      const cases = [
        ['frobnicate'],
        ['token'],
        ['token', '--user'],
        ['token', '--user', '1', '--bogus'],
        ['profile', '--user', '1', '--scope', 'openid'],
        ['token', '--user', '1', '--min-ttl', 'soon'],
        ['token', '--user', '1', '--min-ttl=-5'],
        ['health', '--timeout', '0'],
        ['health', '--json=yes'],
        ['dev-signin', '--sub', 'not-digits'],
      ];
      const results = await Promise.all(cases.map((args) => cli(args)));
      for (const run of results) {
        expectExit(run, 2);
        expect(run.stdout).to.equal('');
        expect(run.stderr).to.match(/^tokenbroker: .+\nRun with --help for usage\.\n$/);
      }
      expect(results.map((r) => r.stderr.split('\n')[0])).to.deep.equal([
        "tokenbroker: unknown command 'frobnicate'",
        'tokenbroker: token needs --user',
        'tokenbroker: --user needs a value (write --user=VALUE for a value that starts with -)',
        'tokenbroker: unknown option --bogus',
        'tokenbroker: profile does not take --scope',
        'tokenbroker: --min-ttl must be a whole number of seconds',
        'tokenbroker: --min-ttl must be a whole number of seconds',
        'tokenbroker: --timeout must be a number of seconds above 0 and at most 3600',
        'tokenbroker: --json takes no value',
        'tokenbroker: --sub must be a Google account ID: 1 to 255 decimal digits',
      ]);
    });

    it('exits 2 for status/revoke without --user and for incomplete or conflicting credential options', async () => {
      const cases = [
        ['status'],
        ['revoke', '--user', '1', '--scope', 'openid'],
        ['status', '--user', '1', '--tls-cert', 'c.pem'],
        ['status', '--user', '1', '--id-token-audience', 'https://x', '--id-token-file', 'f'],
      ];
      const results = await Promise.all(cases.map((args) => cli(args)));
      for (const run of results) expectExit(run, 2);
      expect(results.map((r) => r.stderr.split('\n')[0])).to.deep.equal([
        'tokenbroker: status needs --user',
        'tokenbroker: revoke does not take --scope',
        'tokenbroker: --tls-cert and --tls-key go together',
        'tokenbroker: give --id-token-audience or --id-token-file, not both',
      ]);
    });

    it('reports usage errors as JSON on stdout with --json', async () => {
      const run = await cli(['token', '--json']);
      expectExit(run, 2);
      expect(run.stderr).to.equal('');
      expect(json(run)).to.deep.equal({ error: { code: 'USAGE', message: 'token needs --user' } });
    });
  });

  describe('unreachable broker', () => {
    it('exits 3 when nothing listens at the address', async () => {
      const port = await closedPort();
      const [health, token] = await Promise.all([
        cli(['health', '--address', `127.0.0.1:${port}`]),
        cli(['token', '--json', '--user', '1', '--address', `127.0.0.1:${port}`]),
      ]);
      expectExit(health, 3);
      expect(health.stderr).to.match(/^UNAVAILABLE: cannot reach TokenBroker at 127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
      expectExit(token, 3);
      expect(json(token)).to.have.nested.property('error.code', 'UNAVAILABLE');
    });

    it('exits 3 when the address accepts connections but never answers within --timeout', async () => {
      const silent = await silentServer();
      try {
        const started = Date.now();
        const run = await cli(['profile', '--user', '1', '--timeout', '0.5', '--address', `127.0.0.1:${silent.port}`]);
        expectExit(run, 3);
        expect(run.stderr).to.include('DEADLINE_EXCEEDED: no answer from');
        expect(Date.now() - started).to.be.below(10_000);
      } finally {
        await silent.close();
      }
    });
  });

  describe('caller credentials: Google ID tokens', () => {
    const POLICY = `
callers:
  ${OPS}:
    rpcs: [ExchangeCode, GetGrantStatus, RevokeUser]
  ${READER}:
    rpcs: [GetProfile]
`;
    let secured: TestStack;
    let securedAddress: string;
    let files: string;
    let user: string;

    before(async () => {
      secured = await TestStack.start({ policy: POLICY });
      securedAddress = `127.0.0.1:${secured.app.port}`;
      files = mkdtempSync(path.join(tmpdir(), 'tokenbroker-cli-creds-'));
      const ops = secured.clientAs(OPS);
      try {
        user = (await ops.exchangeCode({ authCode: secured.mintCode(secured.newUser()) })).userId;
      } finally {
        ops.close();
      }
    });
    after(async () => {
      await secured?.close();
      rmSync(files, { recursive: true, force: true });
    });

    function tokenFile(email: string): string {
      const file = path.join(files, `${email.split('@')[0]}.jwt`);
      writeFileSync(file, `${secured.callerToken(email)}\n`, { mode: 0o600 });
      return file;
    }

    it('sends the token from --id-token-file or $TOKENBROKER_ID_TOKEN; the policy decides, health needs none', async () => {
      const opsFile = tokenFile(OPS);
      const [fromFile, fromEnv, none, health] = await Promise.all([
        cli(['status', '--json', '--user', user, '--id-token-file', opsFile, '--address', securedAddress]),
        cli(['status', '--json', '--user', user, '--address', securedAddress], { TOKENBROKER_ID_TOKEN: secured.callerToken(OPS) }),
        cli(['status', '--json', '--user', user, '--address', securedAddress]),
        cli(['health', '--address', securedAddress]),
      ]);
      expectExit(fromFile, 0);
      expect(json(fromFile)).to.include({ state: 'ACTIVE' });
      expectExit(fromEnv, 0);
      expectExit(none, 1);
      expect(json(none)).to.have.nested.property('error.reason', 'UNAUTHENTICATED');
      expectExit(health, 0);

      const denied = await cli(['revoke', '--user', user, '--id-token-file', tokenFile(READER), '--address', securedAddress]);
      expectExit(denied, 1);
      expect(denied.stderr).to.match(/^PERMISSION_DENIED PERMISSION_DENIED: /);
      expect(await secured.rawDocument(user)).to.not.equal(undefined);

      const revoked = await cli(['revoke', '--json', '--user', user, '--id-token-file', opsFile, '--address', securedAddress]);
      expectExit(revoked, 0);
      expect(json(revoked)).to.deep.equal({ was_stored: true, google_revocation: 'DONE' });
      expect(await secured.rawDocument(user)).to.equal(undefined);
    });

    it('refuses a missing or malformed token file without printing what it holds', async () => {
      const junk = path.join(files, 'junk');
      const content = `not-a-jwt-${randomBytes(12).toString('hex')}`;
      writeFileSync(junk, content);
      const [missing, malformed] = await Promise.all([
        cli(['status', '--user', '1', '--id-token-file', path.join(files, 'absent'), '--address', securedAddress]),
        cli(['status', '--user', '1', '--id-token-file', junk, '--address', securedAddress]),
      ]);
      expectExit(missing, 2);
      expect(missing.stderr).to.include('cannot read the --id-token-file file (ENOENT)');
      expectExit(malformed, 2);
      expect(malformed.stderr).to.include('does not hold an ID token');
      expect(malformed.stdout + malformed.stderr).to.not.include(content);
    });

    it('--id-token-audience mints through google-auth-library, and exits 3 naming the problem when it cannot', async () => {
      // No Application Default Credentials and no metadata server: google-auth-library gives up without any traffic.
      const emptyConfig = mkdtempSync(path.join(tmpdir(), 'tokenbroker-cli-gcloud-'));
      try {
        const run = await cli(['status', '--user', '1', '--id-token-audience', 'https://tokenbroker.test', '--address', securedAddress], {
          CLOUDSDK_CONFIG: emptyConfig,
        });
        expectExit(run, 3);
        expect(run.stderr).to.match(/^UNAUTHENTICATED: cannot get a Google ID token for audience https:\/\/tokenbroker\.test: \S/);
      } finally {
        rmSync(emptyConfig, { recursive: true, force: true });
      }

      // The same path with google-auth-library's ID-token client replaced by one that asks the local Google.
      const audiences: string[] = [];
      const connection = connectionFor(
        { idTokenAudience: 'https://tokenbroker.test', tls: false },
        {
          idTokens: {
            getIdTokenClient: (audience: string) => {
              audiences.push(audience);
              return Promise.resolve({
                getRequestHeaders: () => Promise.resolve(new Headers({ authorization: `Bearer ${secured.callerToken(OPS)}` })),
              });
            },
          },
        },
      );
      const client = new TokenBrokerClient(securedAddress, connection.client);
      try {
        const first = await client.revokeUser({ userId: secured.newUser().sub });
        expect(first.wasStored).to.equal(false);
        await client.revokeUser({ userId: secured.newUser().sub });
        expect(audiences, 'one ID-token client, reused').to.deep.equal(['https://tokenbroker.test']);
      } finally {
        client.close();
      }
    });
  });

  describe('caller credentials: mutual TLS', () => {
    let pki: TestPki;
    let secured: TestStack;
    let securedAddress: string;
    let tlsArgs: string[];
    let user: string;

    before(async () => {
      pki = await TestPki.create('cli');
      const server = await pki.issue('tokenbroker', 'DNS:localhost,IP:127.0.0.1', 'serverAuth');
      const client = await pki.issue('ops', `URI:${OPS_SPIFFE}`, 'clientAuth');
      secured = await TestStack.start({
        policy: `callers:\n  ${OPS_SPIFFE}:\n    rpcs: [ExchangeCode, GetGrantStatus]\n`,
        mtls: { server, clientCaFile: pki.caFile },
      });
      securedAddress = `127.0.0.1:${secured.app.port}`;
      tlsArgs = ['--tls-ca', pki.caFile, '--tls-cert', client.certFile, '--tls-key', client.keyFile];
      const ops = new TokenBrokerClient(securedAddress, {
        credentials: mutualTlsCredentials({ ca: pki.ca, cert: client.cert, key: client.key }),
        // Node warns about an IP address as TLS server name; the certificate names localhost too.
        channelOptions: { 'grpc.ssl_target_name_override': 'localhost' },
      });
      try {
        user = (await ops.exchangeCode({ authCode: secured.mintCode(secured.newUser()) })).userId;
      } finally {
        ops.close();
      }
    });
    after(async () => {
      await secured?.close();
      pki?.remove();
    });

    it('calls and checks health with --tls-ca, --tls-cert and --tls-key; without a client certificate the handshake fails', async () => {
      const [status, health, noCert, plaintext] = await Promise.all([
        cli(['status', '--json', '--user', user, ...tlsArgs, '--address', securedAddress]),
        cli(['health', ...tlsArgs, '--address', securedAddress]),
        cli(['status', '--user', user, '--tls-ca', pki.caFile, '--timeout', '5', '--address', securedAddress]),
        cli(['status', '--user', user, '--timeout', '5', '--address', securedAddress]),
      ]);
      expectExit(status, 0);
      expect(json(status)).to.include({ state: 'ACTIVE' });
      expectExit(health, 0);
      expect(health.stdout.trim()).to.equal('SERVING');
      expectExit(noCert, 3);
      expectExit(plaintext, 3);
    });
  });

  // Last (mocha runs nested suites in order): it reads every run above.
  describe('all output above', () => {
    it('holds no code, refresh token, ID token, client secret or key; an access token only as the output of token', () => {
      for (const secret of stack.google.issuedSecrets()) issuedSecrets.add(secret);
      expect(runs.length).to.be.greaterThan(30);
      for (const run of runs) {
        let text = run.stdout + run.stderr;
        if (run.args[0] === 'token' && run.code === 0) {
          text = text.replace(/ya29\.[A-Za-z0-9_-]+/g, '<requested access token>');
        }
        expect(leakedSecrets(text), `output of ${run.args[0]}`).to.deep.equal([]);
      }
    });
  });
});

/** A loopback port nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A TCP server that accepts connections and never says anything, like a hung peer. */
async function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
