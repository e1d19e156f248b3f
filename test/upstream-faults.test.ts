import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { GoogleOAuthClient } from '../src/adapters/google/google-oauth-client';
import { CircuitBreaker, type BreakerState } from '../src/adapters/google/circuit-breaker';
import { parseRetryAfter } from '../src/adapters/google/retry-after';
import { backoffDelayMs, MAX_BACKOFF_MS } from '../src/adapters/google/retry-policy';
import { errorInfoOf, isServiceError } from '../src/client/error-info';
import { BrokerError } from '../src/domain/broker-error';
import { Deadline } from '../src/domain/deadline';
import { LocalOAuthServer, type FaultSpec, type TestUser } from '../src/local/oauth-server';
import { issuedSecrets, leakedSecrets } from './support/log-capture';
import { ManualClock } from './support/manual-clock';
import { waitFor } from './support/wait-for';
import { expectGrpcError, SERVER_CLIENT_ID, useStack, type TestStack } from './support/stack';

const HOUR = 3600_000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Asserts DEADLINE_EXCEEDED. When the caller set the deadline, its own
 * channel may end the call before the server's answer arrives, and then no
 * ErrorInfo comes with it: either is accepted.
 */
async function expectDeadlineExceeded(promise: Promise<unknown>): Promise<void> {
  let caught: unknown;
  try {
    await promise;
  } catch (err: unknown) {
    caught = err;
  }
  if (!isServiceError(caught)) throw new Error(`expected DEADLINE_EXCEEDED, got ${String(caught)}`);
  expect(caught.code).to.equal(status.DEADLINE_EXCEEDED);
  expect([undefined, 'DEADLINE_EXCEEDED']).to.include(errorInfoOf(caught)?.reason);
}

/** Signs `count` new users in, then lets every cached token expire, so each user's next call refreshes. */
async function usersWithStaleTokens(stack: TestStack, count: number): Promise<TestUser[]> {
  const users: TestUser[] = [];
  for (let i = 0; i < count; i += 1) {
    const user = stack.newUser();
    await stack.signIn(user);
    users.push(user);
  }
  stack.clock.advance(HOUR);
  stack.google.resetStats();
  return users;
}

async function userWithStaleToken(stack: TestStack): Promise<TestUser> {
  const [user] = await usersWithStaleTokens(stack, 1);
  return user as TestUser;
}

describe('Upstream faults: retries, Retry-After and no-answer rules', () => {
  const stack = useStack({
    env: {
      TOKENBROKER_UPSTREAM_RETRIES: '2',
      TOKENBROKER_UPSTREAM_BACKOFF_MS: '20',
      TOKENBROKER_UPSTREAM_TIMEOUT_MS: '800',
      // Out of the way here; the breaker has its own block below.
      TOKENBROKER_UPSTREAM_BREAKER_FAILURES: '1000',
    },
  });

  it('serves a token after two 500s, with exactly three refresh requests', async () => {
    const user = await userWithStaleToken(stack);
    stack.google.injectFault({ endpoint: 'token', kind: 'status', status: 500, times: 2 });
    const token = await stack.client.getAccessToken({ userId: user.sub });
    expect(token.accessToken).to.match(/^ya29\./);
    expect(stack.google.stats().refreshToken).to.equal(3);
  });

  it('waits out a 429 Retry-After of 1 s, then succeeds', async () => {
    const user = await userWithStaleToken(stack);
    stack.google.injectFault({ endpoint: 'token', kind: 'status', status: 429, retryAfterSeconds: 1 });
    const started = performance.now();
    expect((await stack.client.getAccessToken({ userId: user.sub })).accessToken).to.match(/^ya29\./);
    expect(performance.now() - started).to.be.at.least(950);
    expect(stack.google.stats().refreshToken).to.equal(2);
  });

  for (const throttle of [429, 503]) {
    it(`gives up at once on a ${throttle} whose Retry-After outlasts the call deadline: one request, UPSTREAM_UNAVAILABLE`, async () => {
      const user = await userWithStaleToken(stack);
      stack.google.injectFault({ endpoint: 'token', kind: 'status', status: throttle, retryAfterSeconds: 30, times: 3 });
      const started = performance.now();
      await expectGrpcError(stack.client.getAccessToken({ userId: user.sub }, { timeoutMs: 3000 }), status.UNAVAILABLE, 'UPSTREAM_UNAVAILABLE');
      // Well before the 3 s deadline: it did not sleep towards it.
      expect(performance.now() - started).to.be.below(1500);
      expect(stack.google.stats().refreshToken).to.equal(1);
    });
  }

  const unusableAnswers: Array<{ name: string; fault: FaultSpec }> = [
    { name: 'a body that is not JSON', fault: { endpoint: 'token', kind: 'malformed' } },
    { name: 'no access_token', fault: { endpoint: 'token', kind: 'missing-fields', fields: ['access_token'] } },
    { name: 'no expires_in', fault: { endpoint: 'token', kind: 'missing-fields', fields: ['expires_in'] } },
  ];
  for (const { name, fault } of unusableAnswers) {
    it(`answers UNAVAILABLE to a 200 with ${name}, without resending, caching or storing anything`, async () => {
      const user = await userWithStaleToken(stack);
      const before = await stack.rawDocument(user.sub);
      stack.google.injectFault(fault);
      await expectGrpcError(stack.client.getAccessToken({ userId: user.sub }), status.UNAVAILABLE, 'UPSTREAM_UNAVAILABLE');
      expect(stack.google.stats().refreshToken).to.equal(1);
      expect(await stack.rawDocument(user.sub)).to.deep.equal(before);
      // Nothing was cached: the next call goes to Google again.
      expect((await stack.client.getAccessToken({ userId: user.sub })).accessToken).to.match(/^ya29\./);
      expect(stack.google.stats().refreshToken).to.equal(2);
    });
  }

  it('retries a 503 but not the invalid_grant after it, though a retry is left; later calls stay home', async () => {
    const user = await userWithStaleToken(stack);
    stack.google.revokeUser(user.sub);
    stack.google.injectFault({ endpoint: 'token', kind: 'status', status: 503 });
    await expectGrpcError(stack.client.getAccessToken({ userId: user.sub }), status.FAILED_PRECONDITION, 'REAUTH_REQUIRED');
    expect(stack.google.stats().refreshToken).to.equal(2);
    await expectGrpcError(stack.client.getAccessToken({ userId: user.sub }), status.FAILED_PRECONDITION, 'REAUTH_REQUIRED');
    expect(stack.google.stats().token).to.equal(2);
  });

  it('resends a refresh whose connection was reset without an answer', async () => {
    const user = await userWithStaleToken(stack);
    stack.google.injectFault({ endpoint: 'token', kind: 'reset' });
    expect((await stack.client.getAccessToken({ userId: user.sub })).accessToken).to.match(/^ya29\./);
    expect(stack.google.stats().refreshToken).to.equal(2);
  });

  it('does not resend ExchangeCode after an attempt timed out unanswered: the code is probably spent', async () => {
    const user = stack.newUser();
    stack.google.injectFault({ endpoint: 'token', kind: 'delay', ms: 1500 });
    const started = performance.now();
    await expectGrpcError(stack.client.exchangeCode({ authCode: stack.mintCode(user) }), status.UNAVAILABLE, 'UPSTREAM_UNAVAILABLE');
    expect(performance.now() - started).to.be.at.least(750); // the per-attempt timeout, not an early give-up
    expect(stack.google.stats().authorizationCode).to.equal(1);
    expect(await stack.rawDocument(user.sub)).to.equal(undefined);
  });

  it('does not resend ExchangeCode after a connection reset', async () => {
    const user = stack.newUser();
    stack.google.injectFault({ endpoint: 'token', kind: 'reset' });
    await expectGrpcError(stack.client.exchangeCode({ authCode: stack.mintCode(user) }), status.UNAVAILABLE, 'UPSTREAM_UNAVAILABLE');
    expect(stack.google.stats().authorizationCode).to.equal(1);
    expect(await stack.rawDocument(user.sub)).to.equal(undefined);
  });

  it('retries ExchangeCode after a 503: Google did not act on it', async () => {
    const user = stack.newUser();
    stack.google.injectFault({ endpoint: 'token', kind: 'status', status: 503 });
    const res = await stack.client.exchangeCode({ authCode: stack.mintCode(user) });
    expect(res.userId).to.equal(user.sub);
    expect(stack.google.stats().authorizationCode).to.equal(2);
  });
});

describe('Upstream faults: the server call budget', () => {
  const stack = useStack({
    env: {
      TOKENBROKER_CALL_TIMEOUT_MS: '600',
      TOKENBROKER_UPSTREAM_TIMEOUT_MS: '1200',
      TOKENBROKER_REFRESH_LEASE_MS: '2000',
      TOKENBROKER_UPSTREAM_RETRIES: '2',
      TOKENBROKER_UPSTREAM_BACKOFF_MS: '20',
      TOKENBROKER_UPSTREAM_BREAKER_FAILURES: '1000',
    },
  });

  /** Starts a GetAccessToken that must end in DEADLINE_EXCEEDED; resolves once its refresh reached Google. */
  async function refreshSent(user: TestUser, timeoutMs?: number): Promise<{ call: Promise<unknown>; startedAt: number; sentAt: number }> {
    const before = stack.google.stats().refreshToken;
    const startedAt = performance.now();
    const request = stack.client.getAccessToken({ userId: user.sub }, { timeoutMs });
    // The server's own answer carries ErrorInfo; a caller's deadline may end the call on its side first.
    const call = timeoutMs === undefined ? expectGrpcError(request, status.DEADLINE_EXCEEDED, 'DEADLINE_EXCEEDED') : expectDeadlineExceeded(request);
    call.catch(() => undefined); // awaited by the test; this only keeps an early failure from counting as unhandled
    await waitFor(() => stack.google.stats().refreshToken > before, 'the refresh to reach Google');
    return { call, startedAt, sentAt: performance.now() };
  }

  it('answers DEADLINE_EXCEEDED at the caller deadline, or at the server budget without one, and starts no retry after it', async () => {
    const [withDeadline, without] = (await usersWithStaleTokens(stack, 2)) as [TestUser, TestUser];
    stack.google.injectFault({ endpoint: 'token', kind: 'delay', ms: 4000, times: 4 });
    const early = await refreshSent(withDeadline, 450);
    const capped = await refreshSent(without);
    await early.call;
    expect(performance.now() - early.startedAt).to.be.at.least(430);
    await capped.call;
    expect(performance.now() - capped.startedAt).to.be.at.least(580);
    // Each attempt times out 1200 ms after it was sent, past its deadline; a retry would follow within the 20 ms backoff.
    await sleep(capped.sentAt + 1550 - performance.now());
    expect(stack.google.stats().refreshToken).to.equal(2);
    stack.google.clearFaults();
    expect((await stack.client.getAccessToken({ userId: withDeadline.sub })).accessToken).to.match(/^ya29\./);
    expect(stack.google.stats().refreshToken).to.equal(3);
  });

  it('lets an attempt in flight at the deadline finish, and keeps the token it brings', async () => {
    const user = await userWithStaleToken(stack);
    // Answered after the 600 ms budget, well inside the 1200 ms attempt timeout.
    stack.google.injectFault({ endpoint: 'token', kind: 'delay', ms: 700 });
    const { call, sentAt } = await refreshSent(user);
    await call;
    await sleep(sentAt + 1000 - performance.now());
    const token = await stack.client.getAccessToken({ userId: user.sub });
    expect(token.accessToken).to.match(/^ya29\./);
    expect(stack.google.stats().refreshToken).to.equal(1);
  });
});

describe('Upstream faults: the token endpoint circuit breaker', () => {
  const OPEN_MS = 600;
  const stack = useStack({
    env: {
      TOKENBROKER_UPSTREAM_BREAKER_FAILURES: '2',
      TOKENBROKER_UPSTREAM_BREAKER_OPEN_MS: String(OPEN_MS),
      TOKENBROKER_UPSTREAM_RETRIES: '1',
      TOKENBROKER_UPSTREAM_BACKOFF_MS: '20',
      TOKENBROKER_UPSTREAM_TIMEOUT_MS: '1000',
    },
  });

  afterEach(async function () {
    // A test that failed may leave the breaker open: let the next one start closed (its first call probes).
    if (this.currentTest?.state === 'failed') await sleep(OPEN_MS + 50);
  });

  /** Fails two attempts in a row (one call with its retry), which opens the breaker. */
  async function openBreaker(user: TestUser): Promise<void> {
    stack.google.injectFault({ endpoint: 'token', kind: 'status', status: 503, times: 2 });
    await expectGrpcError(stack.client.getAccessToken({ userId: user.sub }), status.UNAVAILABLE, 'UPSTREAM_UNAVAILABLE');
  }

  /** Faults that would make any call reaching Google take over a second (Retry-After: 1). */
  function throttleSlowly(): void {
    stack.google.injectFault({ endpoint: 'token', kind: 'status', status: 503, retryAfterSeconds: 1, times: 20 });
  }

  function breakerLog(state: BreakerState): string[] {
    return stack.logs.filter((line) => {
      const entry = JSON.parse(line) as Record<string, unknown>;
      return entry['event'] === 'upstream_breaker' && entry['endpoint'] === 'token' && entry['state'] === state;
    });
  }

  it('opens after consecutive failures: fails fast without sending, still serves cached tokens, and closes after a good probe', async () => {
    const [first, second] = await usersWithStaleTokens(stack, 2);
    const cached = stack.newUser();
    await stack.signIn(cached);
    const cachedToken = await stack.client.getAccessToken({ userId: cached.sub });
    stack.google.resetStats();
    const openedBefore = breakerLog('open').length;

    await openBreaker(first as TestUser);
    expect(stack.google.stats().refreshToken).to.equal(2);
    expect(breakerLog('open').length).to.equal(openedBefore + 1);

    throttleSlowly();
    const started = performance.now();
    const { error } = await expectGrpcError(stack.client.getAccessToken({ userId: (second as TestUser).sub }), status.UNAVAILABLE, 'UPSTREAM_UNAVAILABLE');
    expect(performance.now() - started).to.be.below(300); // a call reaching Google would wait out Retry-After: 1
    expect(error.details).to.match(/token endpoint is failing.*paused/);
    expect(stack.google.stats().token).to.equal(2);
    expect((await stack.client.getAccessToken({ userId: cached.sub })).accessToken).to.equal(cachedToken.accessToken);

    await sleep(OPEN_MS + 100);
    stack.google.clearFaults();
    expect((await stack.client.getAccessToken({ userId: (second as TestUser).sub })).accessToken).to.match(/^ya29\./);
    expect(stack.google.stats().refreshToken).to.equal(3);
    expect((await stack.client.getAccessToken({ userId: (first as TestUser).sub })).accessToken).to.match(/^ya29\./);
    expect(stack.google.stats().refreshToken).to.equal(4);
    expect(breakerLog('closed').length).to.be.at.least(1);
  });

  it('re-opens after a failed probe, and the probing call stops retrying at once', async () => {
    const [first, probing, refused] = (await usersWithStaleTokens(stack, 3)) as [TestUser, TestUser, TestUser];
    await openBreaker(first);
    await sleep(OPEN_MS + 100);
    throttleSlowly();
    const started = performance.now();
    await expectGrpcError(stack.client.getAccessToken({ userId: probing.sub }), status.UNAVAILABLE, 'UPSTREAM_UNAVAILABLE');
    // It did not wait out Retry-After: 1 for a retry the re-opened breaker would refuse.
    expect(performance.now() - started).to.be.below(700);
    expect(stack.google.stats().refreshToken).to.equal(3);
    await expectGrpcError(stack.client.getAccessToken({ userId: refused.sub }), status.UNAVAILABLE, 'UPSTREAM_UNAVAILABLE');
    expect(stack.google.stats().refreshToken).to.equal(3);

    await sleep(OPEN_MS + 100);
    stack.google.clearFaults();
    expect((await stack.client.getAccessToken({ userId: refused.sub })).accessToken).to.match(/^ya29\./);
  });

  it('lets exactly one probe through when half-open; concurrent calls fail fast', async () => {
    const [first, ...others] = await usersWithStaleTokens(stack, 4);
    await openBreaker(first as TestUser);
    await sleep(OPEN_MS + 100);
    stack.google.injectFault({ endpoint: 'token', kind: 'delay', ms: 400 });
    const results = await Promise.allSettled(others.map((user) => stack.client.getAccessToken({ userId: user.sub })));
    expect(results.filter((r) => r.status === 'fulfilled')).to.have.length(1);
    for (const failed of results.filter((r) => r.status === 'rejected')) {
      await expectGrpcError(Promise.reject(failed.reason), status.UNAVAILABLE, 'UPSTREAM_UNAVAILABLE');
    }
    expect(stack.google.stats().refreshToken).to.equal(3);
    // The probe succeeded: the breaker is closed and the others are served.
    for (const user of others) {
      expect((await stack.client.getAccessToken({ userId: user.sub })).accessToken).to.match(/^ya29\./);
    }
  });

  it('counts an invalid_grant answer as Google being up', async () => {
    const [dead, alive] = (await usersWithStaleTokens(stack, 2)) as [TestUser, TestUser];
    stack.google.revokeUser(dead.sub);
    // 503 (one failure), then invalid_grant: had that counted, two failures would open the breaker.
    stack.google.injectFault({ endpoint: 'token', kind: 'status', status: 503 });
    await expectGrpcError(stack.client.getAccessToken({ userId: dead.sub }), status.FAILED_PRECONDITION, 'REAUTH_REQUIRED');
    expect(stack.google.stats().refreshToken).to.equal(2);
    stack.google.injectFault({ endpoint: 'token', kind: 'status', status: 503 });
    expect((await stack.client.getAccessToken({ userId: alive.sub })).accessToken).to.match(/^ya29\./);
    expect(stack.google.stats().refreshToken).to.equal(4);
  });
});

describe('GoogleOAuthClient against failing endpoints', () => {
  const clientSecret = 'GOCSPX-upstream-faults-test-secret';
  let google: LocalOAuthServer;

  before(async () => {
    issuedSecrets.add(clientSecret);
    google = await LocalOAuthServer.start({ clientId: SERVER_CLIENT_ID, clientSecret });
  });
  after(async () => {
    for (const secret of google.issuedSecrets()) issuedSecrets.add(secret);
    await google.close();
  });
  beforeEach(() => {
    google.clearFaults();
    google.resetStats();
  });

  function client(overrides: { tokenUrl?: string; retries?: number; breakerFailures?: number } = {}): GoogleOAuthClient {
    return new GoogleOAuthClient({
      clientId: SERVER_CLIENT_ID,
      clientSecret,
      endpoints: {
        tokenUrl: overrides.tokenUrl ?? google.endpoints.tokenUrl,
        revokeUrl: google.endpoints.revokeUrl,
        certsUrl: google.endpoints.pemCertsUrl,
        issuers: [google.issuer],
      },
      timeoutMs: 1000,
      retries: overrides.retries ?? 2,
      backoffMs: 5,
      breakerFailures: overrides.breakerFailures ?? 100,
      breakerOpenMs: 60_000,
      clock: new ManualClock(),
    });
  }

  async function failure(promise: Promise<unknown>): Promise<BrokerError> {
    try {
      await promise;
    } catch (err: unknown) {
      if (err instanceof BrokerError) {
        expect(leakedSecrets(`${err.message} ${String(err.cause)}`), 'credential in an error').to.deep.equal([]);
        return err;
      }
      throw err;
    }
    throw new Error('expected a BrokerError');
  }

  it('resends an exchange refused at connect (never sent): three attempts open a breaker of three', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const oauth = client({ tokenUrl: `http://127.0.0.1:${port}/token`, retries: 2, breakerFailures: 3 });

    const refused = await failure(oauth.exchangeCode('4/0never-sent', '', Deadline.in(5000)));
    expect(refused.code).to.equal('UPSTREAM_UNAVAILABLE');
    expect(String(refused.cause)).to.include('ECONNREFUSED');
    const paused = await failure(oauth.exchangeCode('4/0never-sent', '', Deadline.in(5000)));
    expect(paused.message).to.match(/paused/);
  });

  it('sends one exchange only when the connection resets after sending: the breaker of three stays closed', async () => {
    const oauth = client({ retries: 2, breakerFailures: 3 });
    google.injectFault({ endpoint: 'token', kind: 'reset' });
    const reset = await failure(oauth.exchangeCode('4/0whatever', '', Deadline.in(5000)));
    expect(String(reset.cause)).to.include('ECONNRESET');
    expect(google.stats().authorizationCode).to.equal(1);
    google.injectFault({ endpoint: 'token', kind: 'reset' });
    const again = await failure(oauth.exchangeCode('4/0whatever', '', Deadline.in(5000)));
    expect(again.message).to.not.match(/paused/);
    expect(google.stats().authorizationCode).to.equal(2);
  });

  it('keeps one breaker per endpoint: revoke still goes out while the token breaker is open', async () => {
    const oauth = client({ retries: 1, breakerFailures: 2 });
    google.injectFault({ endpoint: 'token', kind: 'status', status: 500, times: 2 });
    await failure(oauth.refresh('1//whatever', undefined, Deadline.in(5000)));
    const paused = await failure(oauth.refresh('1//whatever', undefined, Deadline.in(5000)));
    expect(paused.message).to.match(/token endpoint is failing/);
    expect(google.stats().token).to.equal(2);
    await oauth.revoke('1//unknown-token', Deadline.in(5000)); // invalid_token counts as revoked
    expect(google.stats().revoke).to.equal(1);
  });

  it('counts an unreadable 200 as a failure: two of them open a breaker of two', async () => {
    const oauth = client({ retries: 0, breakerFailures: 2 });
    const code = google.mintCode({ sub: '1000000000000000000001', email: 'breaker@example.com' }, { scopes: ['openid'], consent: true });
    const { refreshToken } = await oauth.exchangeCode(code, '', Deadline.in(5000));
    google.resetStats();
    google.injectFault({ endpoint: 'token', kind: 'malformed' });
    google.injectFault({ endpoint: 'token', kind: 'missing-fields', fields: ['access_token'] });
    for (let i = 0; i < 2; i += 1) {
      expect((await failure(oauth.refresh(refreshToken ?? '', undefined, Deadline.in(5000)))).message).to.not.match(/paused/);
    }
    expect((await failure(oauth.refresh(refreshToken ?? '', undefined, Deadline.in(5000)))).message).to.match(/paused/);
    expect(google.stats().token).to.equal(2);
  });

  it('sends nothing once the deadline has passed', async () => {
    const oauth = client();
    const late = await failure(oauth.refresh('1//whatever', undefined, Deadline.in(0)));
    expect(late.code).to.equal('DEADLINE_EXCEEDED');
    expect(google.stats().token).to.equal(0);
  });
});

describe('Retry-After, backoff and circuit breaker rules', () => {
  it('reads Retry-After as delta-seconds or an HTTP-date', () => {
    const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
    expect(parseRetryAfter('120', now)).to.equal(120_000);
    expect(parseRetryAfter(' 0 ', now)).to.equal(0);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:30 GMT', now)).to.equal(30_000);
    expect(parseRetryAfter('Wednesday, 21-Oct-15 07:28:05 GMT', now)).to.equal(5_000);
    expect(parseRetryAfter('Wed Oct 21 07:28:02 2015', now)).to.equal(2_000);
    expect(parseRetryAfter('Tue, 20 Oct 2015 07:28:00 GMT', now)).to.equal(0);
    for (const bad of [null, undefined, '', '-5', '1.5', 'soon', '2015-10-21T07:28:30Z']) {
      expect(parseRetryAfter(bad, now), String(bad)).to.equal(undefined);
    }
  });

  it('draws full-jitter backoff below a doubling ceiling, capped', () => {
    const top = () => 0.999999;
    expect(backoffDelayMs(1, 100, () => 0)).to.equal(0);
    expect(backoffDelayMs(1, 100, top)).to.equal(99);
    expect(backoffDelayMs(3, 100, top)).to.equal(399);
    expect(backoffDelayMs(30, 100, top)).to.equal(MAX_BACKOFF_MS - 1);
    expect(backoffDelayMs(2, 100, () => 0.5)).to.equal(100);
  });

  it('moves closed -> open -> half-open (one probe) -> closed or open again', () => {
    let now = 0;
    const states: BreakerState[] = [];
    const breaker = new CircuitBreaker({ failureThreshold: 2, openMs: 100, now: () => now, onStateChange: (s) => states.push(s) });
    breaker.admit()?.failed();
    breaker.admit()?.succeeded(); // resets the count
    breaker.admit()?.failed();
    expect(breaker.state).to.equal('closed');
    const late = breaker.admit(); // in flight while the breaker opens
    breaker.admit()?.failed();
    expect(breaker.state).to.equal('open');
    expect(breaker.admit()).to.equal(undefined);
    late?.succeeded(); // an outcome from before the opening changes nothing
    expect(breaker.state).to.equal('open');

    now = 100;
    const probe = breaker.admit();
    expect(probe).to.not.equal(undefined);
    expect(breaker.admit(), 'a second probe').to.equal(undefined);
    probe?.failed();
    expect(breaker.state).to.equal('open');
    now = 150;
    expect(breaker.admit()).to.equal(undefined);
    now = 200;
    breaker.admit()?.succeeded();
    expect(breaker.state).to.equal('closed');
    expect(states).to.deep.equal(['open', 'half-open', 'open', 'half-open', 'closed']);
  });
});
