import { expect } from 'chai';
import type { Server } from 'node:http';
import { createServer } from 'node:net';
import { createGatewayServer, SIGN_IN_PATH } from '../examples/gateway/gateway';
import { TokenBrokerClient } from '../src/client/token-broker-client';
import { capturedLogLines, leakedSecrets } from './support/log-capture';
import { useStack } from './support/stack';

const GATEWAY = 'gateway@tb-test.iam.gserviceaccount.com';
const PHOTOS = 'photos@tb-test.iam.gserviceaccount.com';
const POLICY = `
callers:
  ${GATEWAY}:
    rpcs: [ExchangeCode]
  ${PHOTOS}:
    rpcs: [GetAccessToken]
    scopes: [https://www.googleapis.com/auth/drive.readonly]
`;

/** A running example gateway and what it logged. */
interface RunningGateway {
  url: string;
  events: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

/** What the app got back. */
interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
  text: string;
}

describe('example gateway (examples/gateway)', function () {
  this.timeout(30_000);
  const stack = useStack({ policy: POLICY });
  const running: RunningGateway[] = [];
  let gateway: RunningGateway;

  /** Starts the example on 127.0.0.1:0 in front of `address`, calling as `identity`. */
  async function startGateway(address: string, identity: string): Promise<RunningGateway> {
    const broker = new TokenBrokerClient(address, {
      idToken: () => stack.callerToken(identity),
      defaultTimeoutMs: 5000,
      retry: { attempts: 1, backoffMs: 20 },
    });
    const events: Array<Record<string, unknown>> = [];
    const server: Server = createGatewayServer({
      broker,
      retryAfterSeconds: 7,
      log: (event) => {
        events.push(event);
        // The suite's last test scans every captured line for credentials.
        capturedLogLines.push(JSON.stringify(event));
      },
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const gw: RunningGateway = {
      url: `http://127.0.0.1:${port}${SIGN_IN_PATH}`,
      events,
      close: () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
          broker.close();
        }),
    };
    running.push(gw);
    return gw;
  }

  before(async () => {
    gateway = await startGateway(`127.0.0.1:${stack.app.port}`, GATEWAY);
  });
  after(async () => {
    await Promise.all(running.map((gw) => gw.close()));
  });

  /** POSTs like the app: JSON with X-Requested-With, unless `init` says otherwise. */
  async function post(body: unknown, init: { headers?: Record<string, string>; method?: string; raw?: string; to?: RunningGateway } = {}): Promise<Answer> {
    const res = await fetch((init.to ?? gateway).url, {
      method: init.method ?? 'POST',
      headers: { 'content-type': 'application/json', 'x-requested-with': 'com.example.app', ...init.headers },
      body: init.method === 'GET' ? undefined : (init.raw ?? JSON.stringify(body)),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: JSON.parse(text) as Record<string, unknown>, text };
  }

  it('exchanges the code through TokenBroker and answers the user ID and profile, never a token', async () => {
    const user = stack.newUser();
    const answer = await post({ serverAuthCode: stack.mintCode(user) });
    expect(answer.status).to.equal(200);
    expect(answer.headers.get('cache-control')).to.equal('no-store');
    expect(answer.body).to.deep.include({ userId: user.sub, created: true });
    expect(answer.body.profile).to.deep.include({ email: user.email, emailVerified: true, name: 'Test User' });
    expect(answer.text).to.not.match(/ya29\.|1\/\/|eyJ/);
    expect(leakedSecrets(answer.text)).to.deep.equal([]);
    expect(await stack.rawDocument(user.sub)).to.include({ user_id: user.sub, status: 'ACTIVE' });
    expect(stack.google.stats().authorizationCode).to.equal(1);
  });

  it('refuses a request without X-Requested-With (403): Google is not asked, nothing is stored, the code stays usable', async () => {
    const user = stack.newUser();
    const code = stack.mintCode(user);
    const absent = await fetch(gateway.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ serverAuthCode: code }) });
    expect(absent.status).to.equal(403);
    expect(await absent.json()).to.deep.equal({ error: 'X_REQUESTED_WITH_REQUIRED' });
    const empty = await post({ serverAuthCode: code }, { headers: { 'x-requested-with': '' } });
    expect([empty.status, empty.body]).to.deep.equal([403, { error: 'X_REQUESTED_WITH_REQUIRED' }]);
    expect(stack.google.stats().token).to.equal(0);
    expect(await stack.rawDocument(user.sub)).to.equal(undefined);
    expect((await post({ serverAuthCode: code })).status).to.equal(200);
  });

  it('refuses other paths (404), methods (405), content types (415), bad bodies (400) and oversize bodies (413) before calling the broker', async () => {
    const code = stack.mintCode(stack.newUser());
    const other = await fetch(gateway.url.replace(SIGN_IN_PATH, '/auth/other'), { method: 'POST', headers: { 'x-requested-with': 'x' } });
    expect(other.status).to.equal(404);
    const get = await post(undefined, { method: 'GET' });
    expect([get.status, get.headers.get('allow')]).to.deep.equal([405, 'POST']);
    const form = await post(undefined, { headers: { 'content-type': 'application/x-www-form-urlencoded' }, raw: `serverAuthCode=${code}` });
    expect(form.status).to.equal(415);
    const bad = await Promise.all([
      post(undefined, { raw: '' }),
      post(undefined, { raw: '{not json' }),
      post({}),
      post({ serverAuthCode: 42 }),
      post({ serverAuthCode: 'has spaces in it' }),
      post(['an', 'array']),
    ]);
    expect(bad.map((a) => [a.status, a.body.error])).to.deep.equal(Array(6).fill([400, 'INVALID_REQUEST']));
    const big = await post({ serverAuthCode: 'x'.repeat(5000) });
    expect([big.status, big.body.error]).to.deep.equal([413, 'BODY_TOO_LARGE']);
    expect(stack.google.stats().token).to.equal(0);
    for (const answer of [get, form, ...bad, big]) expect(answer.text).to.not.include(code);
  });

  it('maps a reused code: the same answer while ExchangeCode replays it, then 400 INVALID_AUTH_CODE', async () => {
    const user = stack.newUser();
    const code = stack.mintCode(user);
    const first = await post({ serverAuthCode: code });
    const retried = await post({ serverAuthCode: code });
    expect([first.status, retried.status]).to.deep.equal([200, 200]);
    expect(retried.body).to.deep.include({ userId: user.sub, created: true });
    expect(stack.google.stats().authorizationCode).to.equal(1);

    stack.clock.advance(11 * 60_000); // past TOKENBROKER_EXCHANGE_REPLAY_SECONDS (600)
    const reused = await post({ serverAuthCode: code });
    expect([reused.status, reused.body]).to.deep.equal([400, { error: 'INVALID_AUTH_CODE' }]);
    const expired = await post({ serverAuthCode: stack.mintCode(stack.newUser(), { ttlSeconds: 0 }) });
    expect([expired.status, expired.body]).to.deep.equal([400, { error: 'INVALID_AUTH_CODE' }]);
  });

  it('answers 409 CONSENT_REQUIRED to a first sign-in that brought no refresh token, storing nothing', async () => {
    const user = stack.newUser();
    // The user consented at Google before (that code was never exchanged), so this sign-in skipped the consent screen.
    stack.mintCode(user);
    const answer = await post({ serverAuthCode: stack.mintCode(user, { consent: false }) });
    expect([answer.status, answer.body]).to.deep.equal([409, { error: 'CONSENT_REQUIRED' }]);
    expect(await stack.rawDocument(user.sub)).to.equal(undefined);
    // Signing in again with the consent prompt works.
    expect((await post({ serverAuthCode: stack.mintCode(user, { consent: true }) })).status).to.equal(200);
  });

  it('answers 503 with Retry-After when Google fails and when the broker cannot be reached', async () => {
    stack.google.injectFault({ endpoint: 'token', kind: 'status', status: 503, times: 10 });
    const googleDown = await post({ serverAuthCode: stack.mintCode(stack.newUser()) });
    stack.google.clearFaults();
    expect([googleDown.status, googleDown.body, googleDown.headers.get('retry-after')]).to.deep.equal([503, { error: 'UNAVAILABLE' }, '7']);

    const brokerDown = await startGateway(`127.0.0.1:${await closedPort()}`, GATEWAY);
    const code = stack.mintCode(stack.newUser());
    const answer = await post({ serverAuthCode: code }, { to: brokerDown });
    expect([answer.status, answer.body, answer.headers.get('retry-after')]).to.deep.equal([503, { error: 'UNAVAILABLE' }, '7']);
    expect(brokerDown.events).to.deep.include({ event: 'exchange_failed', grpcCode: 'UNAVAILABLE', reason: undefined, status: 503 });
  });

  it('answers 500 when the broker refuses the gateway itself (policy), and logs why', async () => {
    const misconfigured = await startGateway(`127.0.0.1:${stack.app.port}`, PHOTOS);
    const answer = await post({ serverAuthCode: stack.mintCode(stack.newUser()) }, { to: misconfigured });
    expect([answer.status, answer.body]).to.deep.equal([500, { error: 'INTERNAL' }]);
    expect(misconfigured.events).to.deep.include({ event: 'exchange_failed', grpcCode: 'PERMISSION_DENIED', reason: 'PERMISSION_DENIED', status: 500 });
    expect(stack.google.stats().token).to.equal(0);
  });

  it('never logs a code', () => {
    const lines = running.flatMap((gw) => gw.events.map((e) => JSON.stringify(e)));
    expect(lines.length).to.be.greaterThan(15);
    for (const secret of stack.google.issuedSecrets()) expect(lines.join('\n')).to.not.include(secret);
    expect(leakedSecrets(lines.join('\n'))).to.deep.equal([]);
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
