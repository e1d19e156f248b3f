import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { request } from 'node:http';
import { storeCall, storeBudget } from '../src/adapters/firestore/store-call';
import { TokenBrokerClient } from '../src/client/token-broker-client';
import { BrokerError } from '../src/domain/broker-error';
import { NO_METRICS, type FirestoreOperation, type Metrics } from '../src/observability/metrics';
import { issuedSecrets } from './support/log-capture';
import { parseSamples, type Sample } from './support/prometheus-text';
import { expectGrpcError, useStack } from './support/stack';

const GATEWAY = 'gateway@tb-metrics.iam.gserviceaccount.com';
const PHOTOS = 'photos@tb-metrics.iam.gserviceaccount.com';
const DRIVE = 'https://www.googleapis.com/auth/drive.readonly';
const HOUR = 3600_000;

const POLICY = `
callers:
  ${GATEWAY}:
    rpcs: [ExchangeCode, GetProfile]
  ${PHOTOS}:
    rpcs: [GetAccessToken]
    scopes: [${DRIVE}]
`;

/** GETs `path` on the metrics port over real HTTP. */
function httpGet(port: number, path: string, method = 'GET'): Promise<{ status: number; contentType: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The value of the one series of `name` whose labels include `labels` (0 when absent). */
function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  expect(found.length, `${name} ${JSON.stringify(labels)} matches more than one series`).to.be.at.most(1);
  return found[0]?.value ?? 0;
}

describe('Prometheus metrics', () => {
  const stack = useStack({
    policy: POLICY,
    // Two failed attempts (one call, with the stack's one retry) open the token endpoint's breaker.
    env: { TOKENBROKER_METRICS_PORT: '0', TOKENBROKER_UPSTREAM_BREAKER_FAILURES: '2', TOKENBROKER_UPSTREAM_BACKOFF_MS: '1' },
  });

  async function scrape(port = stack.app.metricsPort): Promise<{ body: string; samples: Sample[] }> {
    if (port === undefined) throw new Error('the stack serves no metrics port');
    const res = await httpGet(port, '/metrics');
    expect(res.status).to.equal(200);
    expect(res.contentType).to.match(/^text\/plain; version=0\.0\.4/);
    return { body: res.body, samples: parseSamples(res.body) };
  }

  it('serves /metrics on its own port, 404 elsewhere, 405 for other methods', async () => {
    const port = stack.app.metricsPort as number;
    expect(port).to.be.a('number').and.not.equal(stack.app.port);
    expect((await httpGet(port, '/')).status).to.equal(404);
    expect((await httpGet(port, '/metricsx')).status).to.equal(404);
    expect((await httpGet(port, '/metrics', 'POST')).status).to.equal(405);
    const { samples } = await scrape();
    // prom-client's default process metrics, and every closed-set series from the start.
    expect(valueOf(samples, 'process_cpu_user_seconds_total')).to.be.greaterThan(0);
    expect(samples.some((s) => s.name === 'nodejs_eventloop_lag_seconds')).to.equal(true);
    expect(samples.some((s) => s.name === 'tokenbroker_upstream_requests_total' && s.labels.endpoint === 'revoke' && s.labels.outcome === 'breaker_open')).to.equal(true);
    expect(valueOf(samples, 'tokenbroker_upstream_breaker_open', { endpoint: 'token' })).to.equal(0);
    expect(samples.some((s) => s.name === 'tokenbroker_firestore_duration_seconds_count' && s.labels.operation === 'revocation_settle')).to.equal(true);
  });

  it('moves every series with traffic, and no label names a user, caller or token', async () => {
    const gateway = stack.clientAs(GATEWAY);
    const photos = stack.clientAs(PHOTOS);
    const user = stack.newUser();
    const deadUser = stack.newUser();
    try {
      const before = (await scrape()).samples;
      const delta = (samples: Sample[], name: string, labels: Record<string, string> = {}) => valueOf(samples, name, labels) - valueOf(before, name, labels);

      // A sign-in: the token endpoint and the certs endpoint, once each.
      await gateway.exchangeCode({ authCode: stack.mintCode(user) });
      await gateway.exchangeCode({ authCode: stack.mintCode(deadUser) });
      // The exchange stored the profile: a hit.
      await gateway.getProfile({ userId: user.sub });
      // A narrower scope than the sign-in's token: a miss and a refresh; then a hit.
      await photos.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
      await photos.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
      // Concurrent calls for an expired token share one refresh: the others join it.
      stack.clock.advance(HOUR);
      stack.google.resetStats();
      await Promise.all(Array.from({ length: 8 }, () => photos.getAccessToken({ userId: user.sub, scopes: [DRIVE] })));
      expect(stack.google.stats().refreshToken).to.equal(1);
      // A denied call.
      await expectGrpcError(photos.getProfile({ userId: user.sub }), status.PERMISSION_DENIED, 'PERMISSION_DENIED');
      // A dead grant: the user revoked access at Google.
      stack.google.revokeUser(deadUser.sub);
      await expectGrpcError(photos.getAccessToken({ userId: deadUser.sub, scopes: [DRIVE] }), status.FAILED_PRECONDITION, 'REAUTH_REQUIRED');
      // Google failing: two 503s (the call and its retry) open the breaker; the next call is refused without a request.
      stack.clock.advance(HOUR);
      stack.google.injectFault({ endpoint: 'token', kind: 'status', status: 503, times: 2 });
      await expectGrpcError(photos.getAccessToken({ userId: user.sub, scopes: [DRIVE] }), status.UNAVAILABLE, 'UPSTREAM_UNAVAILABLE');
      const duringOutage = (await scrape()).samples;
      expect(valueOf(duringOutage, 'tokenbroker_upstream_breaker_open', { endpoint: 'token' })).to.equal(1);
      await expectGrpcError(photos.getAccessToken({ userId: user.sub, scopes: [DRIVE] }), status.UNAVAILABLE, 'UPSTREAM_UNAVAILABLE');

      const { body, samples } = await scrape();
      const rpc = (method: string, code: string) => delta(samples, 'tokenbroker_rpc_handled_total', { method, code });
      expect(rpc('ExchangeCode', 'OK')).to.equal(2);
      expect(rpc('GetProfile', 'OK')).to.equal(1);
      expect(rpc('GetAccessToken', 'OK')).to.equal(10);
      expect(rpc('GetProfile', 'PERMISSION_DENIED')).to.equal(1);
      expect(rpc('GetAccessToken', 'FAILED_PRECONDITION')).to.equal(1);
      expect(rpc('GetAccessToken', 'UNAVAILABLE')).to.equal(2);
      expect(delta(samples, 'tokenbroker_rpc_duration_seconds_count', { method: 'GetAccessToken', code: 'OK' })).to.equal(10);
      expect(delta(samples, 'tokenbroker_rpc_duration_seconds_bucket', { method: 'GetAccessToken', code: 'OK', le: '+Inf' })).to.equal(10);
      expect(delta(samples, 'tokenbroker_rpc_duration_seconds_sum', { method: 'GetAccessToken', code: 'OK' })).to.be.greaterThan(0);

      const upstream = (endpoint: string, outcome: string) => delta(samples, 'tokenbroker_upstream_requests_total', { endpoint, outcome });
      // Two exchanges, the narrowing refresh, the shared refresh after expiry.
      expect(upstream('token', 'ok')).to.equal(4);
      expect(upstream('token', 'invalid_grant')).to.equal(1);
      expect(upstream('token', 'server_error')).to.equal(2);
      expect(upstream('token', 'breaker_open')).to.equal(1);
      expect(upstream('certs', 'ok')).to.be.at.least(1);
      expect(delta(samples, 'tokenbroker_upstream_duration_seconds_count', { endpoint: 'token' })).to.equal(7);

      // Each sign-in claims its code once and writes its grant once (with the exchange's completion alongside).
      const firestoreCalls = (operation: string) => delta(samples, 'tokenbroker_firestore_duration_seconds_count', { operation });
      expect(firestoreCalls('exchange_claim')).to.equal(2);
      expect(firestoreCalls('grant_update')).to.be.at.least(2);
      expect(delta(samples, 'tokenbroker_firestore_duration_seconds_bucket', { operation: 'exchange_claim', le: '+Inf' })).to.equal(2);
      expect(delta(samples, 'tokenbroker_firestore_duration_seconds_sum', { operation: 'exchange_claim' })).to.be.greaterThan(0);

      const cache = (name: string, result: string) => delta(samples, 'tokenbroker_cache_lookups_total', { cache: name, result });
      expect(cache('profile', 'hit')).to.equal(1);
      expect(cache('access_token', 'hit')).to.be.at.least(1);
      expect(cache('access_token', 'miss')).to.be.at.least(4);
      expect(cache('shared_token', 'miss')).to.be.at.least(3);

      expect(delta(samples, 'tokenbroker_refreshes_total', { outcome: 'ok' })).to.equal(2);
      expect(delta(samples, 'tokenbroker_refreshes_total', { outcome: 'invalid_grant' })).to.equal(1);
      expect(delta(samples, 'tokenbroker_refreshes_total', { outcome: 'failed' })).to.equal(2);
      expect(delta(samples, 'tokenbroker_refresh_joins_total', { scope: 'local' })).to.be.at.least(1);
      expect(delta(samples, 'tokenbroker_grants_marked_dead_total', { reason: 'invalid_grant' })).to.equal(1);

      // Nothing that identifies a user, a caller or a credential, in any label or anywhere in the body.
      for (const secret of stack.google.issuedSecrets()) issuedSecrets.add(secret);
      const forbidden = [user.sub, deadUser.sub, user.email, deadUser.email, GATEWAY, PHOTOS, DRIVE, ...issuedSecrets];
      for (const sample of samples) {
        for (const value of Object.values(sample.labels)) {
          for (const word of forbidden) expect(value, `label of ${sample.name}`).to.not.include(word);
        }
      }
      for (const word of forbidden) expect(body.includes(word), 'scrape mentions an identity or credential').to.equal(false);
    } finally {
      gateway.close();
      photos.close();
    }
  });

  it('counts calls served by another replica\'s refresh as shared joins', async () => {
    // The previous test left this replica's token endpoint breaker open: the
    // peer (a fresh process) signs the user in and refreshes; this replica
    // must then answer from what the peer shared, without calling Google.
    const peer = await stack.startPeer();
    const photos = stack.clientAs(PHOTOS);
    const peerGateway = new TokenBrokerClient(`127.0.0.1:${peer.app.port}`, { idToken: () => stack.callerToken(GATEWAY) });
    const peerPhotos = new TokenBrokerClient(`127.0.0.1:${peer.app.port}`, { idToken: () => stack.callerToken(PHOTOS) });
    try {
      const user = stack.newUser();
      await peerGateway.exchangeCode({ authCode: stack.mintCode(user) });
      stack.clock.advance(HOUR);
      const before = (await scrape()).samples;
      const first = await peerPhotos.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
      const second = await photos.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
      expect(second.accessToken).to.equal(first.accessToken);
      const after = (await scrape()).samples;
      const delta = (name: string, labels: Record<string, string>) => valueOf(after, name, labels) - valueOf(before, name, labels);
      expect(delta('tokenbroker_refreshes_total', { outcome: 'ok' })).to.equal(0);
      expect(delta('tokenbroker_upstream_requests_total', { endpoint: 'token', outcome: 'ok' })).to.equal(0);
      expect(delta('tokenbroker_cache_lookups_total', { cache: 'shared_token', result: 'hit' })).to.equal(1);
      // The peer, which refreshed, counts it there.
      const peerSamples = (await scrape(peer.app.metricsPort)).samples;
      expect(valueOf(peerSamples, 'tokenbroker_refreshes_total', { outcome: 'ok' })).to.equal(1);
    } finally {
      peerGateway.close();
      peerPhotos.close();
      photos.close();
      await peer.close();
    }
  });

  it('counts Firestore failures by operation, and nothing for errors of our own; times every operation', async () => {
    const counted: FirestoreOperation[] = [];
    const timed: Array<[FirestoreOperation, number]> = [];
    const metrics: Metrics = { ...NO_METRICS, firestoreError: (operation) => counted.push(operation), firestoreCall: (operation, seconds) => timed.push([operation, seconds]) };
    expect(await storeCall(storeBudget(1000, metrics, 'exchange_get'), () => new Promise((resolve) => setTimeout(() => resolve('answer'), 30)))).to.equal('answer');
    const failing = storeCall(storeBudget(1000, metrics, 'grant_get'), () => Promise.reject(Object.assign(new Error('unavailable'), { code: 14 })));
    await failing.then(
      () => expect.fail('the call should fail'),
      (err: unknown) => expect((err as { code?: string }).code).to.equal('STORE_UNAVAILABLE'),
    );
    const slow = storeCall(storeBudget(100, metrics, 'shared_token_update'), () => new Promise(() => undefined));
    await slow.then(
      () => expect.fail('the call should time out'),
      (err: unknown) => expect((err as { code?: string }).code).to.equal('STORE_UNAVAILABLE'),
    );
    await storeCall(storeBudget(1000, metrics, 'grant_update'), () => Promise.reject(new BrokerError('CONSENT_REQUIRED', 'ours'))).catch(() => undefined);
    expect(counted).to.deep.equal(['grant_get', 'shared_token_update']);
    expect(timed.map(([operation]) => operation)).to.deep.equal(['exchange_get', 'grant_get', 'shared_token_update', 'grant_update']);
    const seconds = new Map(timed);
    // Timers may fire a little early by the performance clock: allow a millisecond.
    expect(seconds.get('exchange_get')).to.be.at.least(0.029).and.below(1);
    expect(seconds.get('shared_token_update')).to.be.at.least(0.099).and.below(1);
  });
});
