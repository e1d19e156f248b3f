import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { expectGrpcError, SIGN_IN_SCOPES, useStack } from './support/stack';
import { waitFor } from './support/wait-for';

const DRIVE = 'https://www.googleapis.com/auth/drive.readonly';
const HOUR = 3600_000;

describe('GetAccessToken', () => {
  const stack = useStack();

  /** Signs a new user in and lets the exchange's access token expire, so the next call must refresh. */
  async function userWithExpiredToken() {
    const user = stack.newUser();
    await stack.signIn(user);
    stack.clock.advance(HOUR);
    stack.google.resetStats();
    return user;
  }

  it('serves the token from the exchange without calling Google', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    stack.google.resetStats();
    const first = await stack.client.getAccessToken({ userId: user.sub });
    const second = await stack.client.getAccessToken({ userId: user.sub });
    expect(first.accessToken).to.match(/^ya29\./);
    expect(second.accessToken).to.equal(first.accessToken);
    expect(first.scopes).to.deep.equal([...SIGN_IN_SCOPES].sort());
    expect(stack.google.stats().token).to.equal(0);
  });

  it('refreshes once when the cached token has expired, then serves the new one from memory', async () => {
    const user = await userWithExpiredToken();
    const first = await stack.client.getAccessToken({ userId: user.sub });
    const second = await stack.client.getAccessToken({ userId: user.sub });
    expect(second.accessToken).to.equal(first.accessToken);
    expect(stack.google.stats().refreshToken).to.equal(1);
    expect(first.expireTime!.getTime()).to.equal(stack.clock.now() + HOUR);
  });

  it('makes exactly one refresh for 50 concurrent calls for one user', async () => {
    const user = await userWithExpiredToken();
    const results = await Promise.all(Array.from({ length: 50 }, () => stack.client.getAccessToken({ userId: user.sub })));
    expect(new Set(results.map((r) => r.accessToken)).size).to.equal(1);
    expect(stack.google.stats().refreshToken).to.equal(1);
  });

  it('refreshes when the cached token would not last min_ttl', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    stack.clock.advance(HOUR - 10 * 60_000); // 10 minutes left
    stack.google.resetStats();
    await stack.client.getAccessToken({ userId: user.sub, minTtl: { seconds: '300', nanos: 0 } });
    expect(stack.google.stats().refreshToken).to.equal(0);
    await stack.client.getAccessToken({ userId: user.sub, minTtl: { seconds: '900', nanos: 0 } });
    expect(stack.google.stats().refreshToken).to.equal(1);
  });

  it('caps a min_ttl longer than a token lives instead of refreshing on every call', async () => {
    const user = await userWithExpiredToken();
    const day = { seconds: String(24 * 3600), nanos: 0 };
    const first = await stack.client.getAccessToken({ userId: user.sub, minTtl: day });
    const second = await stack.client.getAccessToken({ userId: user.sub, minTtl: day });
    expect(second.accessToken).to.equal(first.accessToken);
    expect(stack.google.stats().refreshToken).to.equal(1);
  });

  it('rejects a negative min_ttl', async () => {
    const user = stack.newUser();
    await expectGrpcError(
      stack.client.getAccessToken({ userId: user.sub, minTtl: { seconds: '-5', nanos: 0 } }),
      status.INVALID_ARGUMENT,
      'INVALID_REQUEST',
    );
  });

  it('narrows the token to a granted subset of scopes', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    stack.google.resetStats();
    const token = await stack.client.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
    expect(token.scopes).to.deep.equal([DRIVE]);
    expect(stack.google.stats().refreshToken).to.equal(1);
    const again = await stack.client.getAccessToken({ userId: user.sub, scopes: [DRIVE, DRIVE] });
    expect(again.accessToken).to.equal(token.accessToken);
    expect(stack.google.stats().refreshToken).to.equal(1);
  });

  it('answers SCOPE_NOT_GRANTED, listing the missing scopes, without calling Google', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    stack.google.resetStats();
    const gmail = 'https://www.googleapis.com/auth/gmail.readonly';
    const { info } = await expectGrpcError(
      stack.client.getAccessToken({ userId: user.sub, scopes: [DRIVE, gmail] }),
      status.FAILED_PRECONDITION,
      'SCOPE_NOT_GRANTED',
    );
    expect(info?.metadata).to.deep.equal({ missingScopes: gmail });
    expect(stack.google.stats().token).to.equal(0);
  });

  it('answers USER_NOT_FOUND for a user never signed in', async () => {
    await expectGrpcError(stack.client.getAccessToken({ userId: stack.newUser().sub }), status.NOT_FOUND, 'USER_NOT_FOUND');
    expect(stack.google.stats().token).to.equal(0);
  });

  it('marks a revoked grant dead: REAUTH_REQUIRED, and later calls do not reach Google', async () => {
    const user = await userWithExpiredToken();
    stack.google.revokeUser(user.sub);
    await expectGrpcError(stack.client.getAccessToken({ userId: user.sub }), status.FAILED_PRECONDITION, 'REAUTH_REQUIRED');
    expect(stack.google.stats().refreshToken).to.equal(1);
    expect(await stack.rawDocument(user.sub)).to.include({ status: 'REAUTH_REQUIRED', dead_reason: 'invalid_grant' });
    const { info } = await expectGrpcError(stack.client.getAccessToken({ userId: user.sub }), status.FAILED_PRECONDITION, 'REAUTH_REQUIRED');
    expect(info?.metadata).to.deep.equal({ deadReason: 'invalid_grant' });
    expect(stack.google.stats().refreshToken).to.equal(1);
  });

  it('revives a dead grant when the user signs in again with consent', async () => {
    const user = await userWithExpiredToken();
    stack.google.revokeUser(user.sub);
    await expectGrpcError(stack.client.getAccessToken({ userId: user.sub }), status.FAILED_PRECONDITION, 'REAUTH_REQUIRED');
    const again = await stack.signIn(user);
    expect(again.created).to.equal(false);
    expect(await stack.rawDocument(user.sub)).to.include({ status: 'ACTIVE' });
    const token = await stack.client.getAccessToken({ userId: user.sub });
    expect(token.accessToken).to.match(/^ya29\./);
  });

  it('answers CONSENT_REQUIRED to a sign-in without consent while the stored grant is dead', async () => {
    const user = await userWithExpiredToken();
    await stack.signIn(user, { consent: false }); // still alive: kept
    stack.google.revokeUser(user.sub);
    await expectGrpcError(stack.client.getAccessToken({ userId: user.sub }), status.FAILED_PRECONDITION, 'REAUTH_REQUIRED');
    // After a revocation Google shows consent on the next sign-in; that one is abandoned,
    // so the following code carries no refresh token.
    stack.mintCode(user);
    const code = stack.mintCode(user, { consent: false });
    await expectGrpcError(stack.client.exchangeCode({ authCode: code }), status.FAILED_PRECONDITION, 'CONSENT_REQUIRED');
    expect(await stack.rawDocument(user.sub)).to.include({ status: 'REAUTH_REQUIRED' });
  });

  it('uses a refresh token stored by a sign-in while the old one was being rejected, instead of marking the grant dead', async () => {
    const user = await userWithExpiredToken();
    stack.google.revokeUser(user.sub);
    stack.google.injectFault({ endpoint: 'token', kind: 'delay', ms: 400 });
    const pending = stack.client.getAccessToken({ userId: user.sub });
    await waitFor(() => stack.google.stats().refreshToken === 1, 'the refresh to reach Google');
    await stack.signIn(user); // stores a new refresh token while the old one's invalid_grant is on its way
    const token = await pending;
    expect(token.accessToken).to.match(/^ya29\./);
    expect(stack.google.stats().refreshToken).to.equal(2);
    expect(await stack.rawDocument(user.sub)).to.include({ status: 'ACTIVE' });
  });

  it('persists a rotated refresh token before answering and uses it next time', async () => {
    const user = await userWithExpiredToken();
    const before = await stack.rawDocument(user.sub);
    stack.google.rotateRefreshTokenOnNextRefresh(user.sub);
    await stack.client.getAccessToken({ userId: user.sub });
    const after = await stack.rawDocument(user.sub);
    expect(after?.refresh_token).to.not.deep.equal(before?.refresh_token);
    expect(after?.refresh_token_hash).to.be.a('string').and.not.equal(before?.refresh_token_hash);
    // The old refresh token is dead at Google: a refresh only works with the stored new one.
    stack.clock.advance(HOUR);
    const token = await stack.client.getAccessToken({ userId: user.sub });
    expect(token.accessToken).to.match(/^ya29\./);
    expect(stack.google.stats().refreshToken).to.equal(2);
  });

  it('updates the stored profile from the ID token of a refresh', async () => {
    const user = stack.newUser({ name: 'Old Name' });
    await stack.signIn(user);
    stack.clock.advance(HOUR);
    stack.google.mintCode({ ...user, name: 'New Name' }, { scopes: SIGN_IN_SCOPES, consent: false }); // Google now knows the new name
    await stack.client.getAccessToken({ userId: user.sub });
    const doc = await stack.rawDocument(user.sub);
    expect((doc?.profile as { name: string }).name).to.equal('New Name');
  });

  it('answers UNAVAILABLE / UPSTREAM_UNAVAILABLE when Google keeps failing, and recovers after', async () => {
    const user = await userWithExpiredToken();
    stack.google.injectFault({ endpoint: 'token', kind: 'status', status: 503, times: 2 });
    await expectGrpcError(stack.client.getAccessToken({ userId: user.sub }), status.UNAVAILABLE, 'UPSTREAM_UNAVAILABLE');
    expect(stack.google.stats().refreshToken).to.equal(2); // first try + 1 configured retry
    const token = await stack.client.getAccessToken({ userId: user.sub });
    expect(token.accessToken).to.match(/^ya29\./);
  });

  it('retries a transient 5xx within the call', async () => {
    const user = await userWithExpiredToken();
    stack.google.injectFault({ endpoint: 'token', kind: 'status', status: 500, times: 1 });
    const token = await stack.client.getAccessToken({ userId: user.sub });
    expect(token.accessToken).to.match(/^ya29\./);
    expect(stack.google.stats().refreshToken).to.equal(2);
  });

  it('answers UPSTREAM_UNAVAILABLE for a token response that is not JSON', async () => {
    const user = await userWithExpiredToken();
    stack.google.injectFault({ endpoint: 'token', kind: 'malformed', times: 1 });
    await expectGrpcError(stack.client.getAccessToken({ userId: user.sub }), status.UNAVAILABLE, 'UPSTREAM_UNAVAILABLE');
  });
});
