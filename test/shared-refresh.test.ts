import { Timestamp } from '@google-cloud/firestore';
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import type { TokenBrokerClient } from '../src/client/token-broker-client';
import { useStack } from './support/stack';
import { waitFor } from './support/wait-for';

const HOUR = 3600_000;
const DRIVE = 'https://www.googleapis.com/auth/drive.readonly';
const LEASE_MS = 5000;

describe('one refresh per grant across replicas', function () {
  this.timeout(60_000);
  const stack = useStack({
    env: { TOKENBROKER_REFRESH_LEASE_MS: String(LEASE_MS), TOKENBROKER_CALL_TIMEOUT_MS: '2900', TOKENBROKER_UPSTREAM_TIMEOUT_MS: '2000' },
  });
  type Peer = Awaited<ReturnType<typeof stack.startPeer>>;
  const peers: Peer[] = [];

  before(async () => {
    peers.push(await stack.startPeer(), await stack.startPeer());
  });
  after(async () => {
    await Promise.all(peers.map((peer) => peer.close()));
  });

  /** The three replicas' clients: this stack's broker and its two peers. */
  function replicas(): TokenBrokerClient[] {
    return [stack.client, ...peers.map((peer) => peer.client)];
  }

  function sharedDoc(userId: string, scopeKey: string) {
    const hash = createHash('sha256').update(scopeKey).digest('hex');
    return stack.db.collection(`${stack.collection}_access_tokens`).doc(`${userId}_${hash}`);
  }

  /** Writes a record whose lease `holder` holds for LEASE_MS, as a replica refreshing (or one that died doing so) leaves it. */
  async function leaseHeldBy(userId: string, holder: string) {
    const until = Timestamp.fromMillis(stack.clock.now() + LEASE_MS);
    await sharedDoc(userId, DRIVE).set({ user_id: userId, scope_key: DRIVE, lease_holder: holder, lease_until: until, delete_after: until });
  }

  it('300 concurrent calls for an expired user across 3 replicas make exactly one refresh', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    stack.clock.advance(HOUR);
    stack.google.resetStats();
    // Hold Google's answer a little so every call arrives while the refresh is in flight.
    stack.google.injectFault({ endpoint: 'token', kind: 'delay', ms: 300 });
    const clients = replicas();
    const results = await Promise.all(
      Array.from({ length: 300 }, (_, i) => (clients[i % 3] as TokenBrokerClient).getAccessToken({ userId: user.sub })),
    );
    expect(stack.google.stats().refreshToken).to.equal(1);
    const tokens = new Set(results.map((r) => r.accessToken));
    expect(tokens.size).to.equal(1);
    expect(results.every((r) => r.expireTime !== undefined && r.expireTime.getTime() > stack.clock.now() + 50 * 60_000)).to.equal(true);
  });

  it('a replica reuses the token another replica refreshed instead of refreshing again', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    stack.google.resetStats();
    const first = await (peers[0] as Peer).client.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
    expect(stack.google.stats().refreshToken).to.equal(1);
    const second = await (peers[1] as Peer).client.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
    expect(second.accessToken).to.equal(first.accessToken);
    expect(stack.google.stats().refreshToken).to.equal(1);
  });

  it('shares the token only sealed, and frees the lease', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    const token = await (peers[0] as Peer).client.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
    const raw = (await sharedDoc(user.sub, DRIVE).get()).data();
    expect(raw).to.not.equal(undefined);
    expect(JSON.stringify(raw)).to.not.include(token.accessToken);
    expect(Buffer.from(JSON.stringify(raw)).includes(Buffer.from(token.accessToken))).to.equal(false);
    expect(raw).to.not.have.property('lease_holder');
  });

  it('waits while another replica holds the lease, and takes over once the lease expires', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    stack.google.resetStats();
    // A replica took the lease and died before sharing a token.
    await leaseHeldBy(user.sub, 'replica-that-died');
    const call = (peers[1] as Peer).client.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(stack.google.stats().refreshToken, 'no refresh while the lease is live').to.equal(0);
    stack.clock.advance(LEASE_MS + 1);
    const token = await call;
    expect(token.accessToken).to.be.a('string').and.not.equal('');
    expect(stack.google.stats().refreshToken).to.equal(1);
    expect(stack.logs.some((line) => line.includes('"event":"refresh_lease_taken_over"'))).to.equal(true);
  });

  it('a caller waiting on a live lease gets DEADLINE_EXCEEDED at its deadline, not a refresh', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    stack.google.resetStats();
    await leaseHeldBy(user.sub, 'replica-still-working');
    const started = Date.now();
    const err = await (peers[0] as Peer).client.getAccessToken({ userId: user.sub, scopes: [DRIVE] }, { timeoutMs: 800 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.have.property('code', 4); // DEADLINE_EXCEEDED
    expect(Date.now() - started).to.be.below(2500);
    expect(stack.google.stats().refreshToken).to.equal(0);
  });

  it('a caller that joined a flight with more time left carries on when the flight\'s deadline passes', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    stack.google.resetStats();
    await leaseHeldBy(user.sub, 'replica-that-died');
    const client = (peers[0] as Peer).client;
    const short = client.getAccessToken({ userId: user.sub, scopes: [DRIVE] }, { timeoutMs: 400 }).then(
      () => 'served',
      (e: unknown) => (e as { code?: number }).code,
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    const long = client.getAccessToken({ userId: user.sub, scopes: [DRIVE] }, { timeoutMs: 2400 });
    expect(await short).to.equal(4); // DEADLINE_EXCEEDED
    stack.clock.advance(LEASE_MS + 1);
    expect((await long).accessToken).to.be.a('string').and.not.equal('');
    expect(stack.google.stats().refreshToken).to.equal(1);
  });

  it('never serves a shared token of a replaced grant', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    const old = await (peers[0] as Peer).client.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
    await stack.signIn(user, { consent: true });
    stack.google.resetStats();
    const fresh = await (peers[1] as Peer).client.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
    expect(fresh.accessToken).to.not.equal(old.accessToken);
    expect(stack.google.stats().refreshToken).to.equal(1);
  });

  it('refreshes instead of failing when a shared token does not open, and logs it', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    await (peers[0] as Peer).client.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
    const ref = sharedDoc(user.sub, DRIVE);
    const raw = (await ref.get()).data() as { token: { ciphertext: Buffer } };
    const flipped = Buffer.from(raw.token.ciphertext);
    flipped[0] = (flipped[0] as number) ^ 0x01;
    await ref.update({ 'token.ciphertext': flipped });
    stack.google.resetStats();
    const token = await (peers[1] as Peer).client.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
    expect(token.accessToken).to.be.a('string').and.not.equal('');
    expect(stack.google.stats().refreshToken).to.equal(1);
    expect(stack.logs.some((line) => line.includes('"event":"shared_token_unreadable"'))).to.equal(true);
  });
});

describe('two sign-ins of one user racing', function () {
  this.timeout(30_000);
  const stack = useStack();

  it('keeps the grant Google issued later, even when the earlier sign-in is stored last', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    // The earlier sign-in reaches Google first, but its answer is held back.
    stack.google.injectFault({ endpoint: 'token', kind: 'delay', ms: 1800 });
    const earlier = stack.client.exchangeCode({ authCode: stack.mintCode(user, { consent: true }) });
    await waitFor(() => stack.google.stats().authorizationCode === 1, 'the earlier exchange to reach Google');
    // ID tokens carry whole seconds: make sure the later one is issued in a later second.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const later = await stack.client.exchangeCode({ authCode: stack.mintCode(user, { consent: true, scopes: ['openid', 'email'] }) });
    const storedByLater = await stack.rawDocument(user.sub);
    const answer = await earlier;
    expect(await stack.rawDocument(user.sub)).to.deep.equal(storedByLater);
    expect(answer.created).to.equal(false);
    expect(answer.grantedScopes).to.deep.equal(later.grantedScopes);
    expect(stack.logs.some((line) => line.includes('"event":"older_sign_in_ignored"'))).to.equal(true);
    // The stored grant is the later one and still works.
    stack.clock.advance(HOUR);
    const token = await stack.client.getAccessToken({ userId: user.sub });
    expect(token.scopes).to.deep.equal(later.grantedScopes);
  });
});
