import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { expectGrpcError, TestStack, useStack } from './support/stack';

describe('ExchangeCode rejections', () => {
  const stack = useStack();

  /** Asserts the exchange of a code minted with `options` fails with `reason` and stores nothing. */
  async function rejects(options: Parameters<TestStack['mintCode']>[1], code: number, reason: string) {
    const user = stack.newUser();
    await expectGrpcError(stack.client.exchangeCode({ authCode: stack.mintCode(user, options) }), code, reason);
    expect(await stack.rawDocument(user.sub)).to.equal(undefined);
  }

  it('rejects a code used twice with INVALID_AUTH_CODE once the replay window has passed', async () => {
    const user = stack.newUser();
    const code = stack.mintCode(user);
    await stack.client.exchangeCode({ authCode: code });
    stack.clock.advance(11 * 60_000);
    await expectGrpcError(stack.client.exchangeCode({ authCode: code }), status.INVALID_ARGUMENT, 'INVALID_AUTH_CODE');
  });

  it('rejects an expired code with INVALID_AUTH_CODE', () => rejects({ ttlSeconds: 0 }, status.INVALID_ARGUMENT, 'INVALID_AUTH_CODE'));

  it('rejects an unknown code with INVALID_AUTH_CODE', async () => {
    await expectGrpcError(stack.client.exchangeCode({ authCode: '4/0unknown-code' }), status.INVALID_ARGUMENT, 'INVALID_AUTH_CODE');
  });

  it('rejects a code issued for another redirect URI', async () => {
    const user = stack.newUser();
    const code = stack.mintCode(user, { redirectUri: 'https://app.example.com/callback' });
    await expectGrpcError(stack.client.exchangeCode({ authCode: code }), status.INVALID_ARGUMENT, 'INVALID_AUTH_CODE');
  });

  it('accepts a code with its web redirect URI', async () => {
    const user = stack.newUser();
    const code = stack.mintCode(user, { redirectUri: 'https://app.example.com/callback' });
    const res = await stack.client.exchangeCode({ authCode: code, redirectUri: 'https://app.example.com/callback' });
    expect(res.userId).to.equal(user.sub);
  });

  it('rejects an empty auth_code before calling Google', async () => {
    stack.google.resetStats();
    await expectGrpcError(stack.client.exchangeCode({ authCode: '' }), status.INVALID_ARGUMENT, 'INVALID_REQUEST');
    expect(stack.google.stats().token).to.equal(0);
  });

  it('rejects an ID token for another audience', () =>
    rejects({ idToken: { aud: 'someone-else.apps.googleusercontent.com' } }, status.INVALID_ARGUMENT, 'INVALID_ID_TOKEN'));

  it('rejects an ID token issued to an app client that is not allowed (azp)', () =>
    rejects({ appClientId: 'rogue-app.apps.googleusercontent.com' }, status.INVALID_ARGUMENT, 'INVALID_ID_TOKEN'));

  it('rejects an expired ID token', () => rejects({ idToken: { expiresInSeconds: -3600 } }, status.INVALID_ARGUMENT, 'INVALID_ID_TOKEN'));

  it('rejects an ID token with a bad signature', () => rejects({ idToken: { signature: 'tampered' } }, status.INVALID_ARGUMENT, 'INVALID_ID_TOKEN'));

  it('rejects an ID token signed by an unknown key', () =>
    rejects({ idToken: { signature: 'unknown-kid' } }, status.INVALID_ARGUMENT, 'INVALID_ID_TOKEN'));

  it('rejects an ID token from another issuer', () =>
    rejects({ idToken: { iss: 'https://evil.example.com' } }, status.INVALID_ARGUMENT, 'INVALID_ID_TOKEN'));

  it('does not refetch the certs for every token naming an unknown key', async () => {
    stack.clock.advance(60_000); // the last fetch is older than the least refetch interval
    stack.google.resetStats();
    for (let i = 0; i < 5; i += 1) {
      await expectGrpcError(stack.client.exchangeCode({ authCode: stack.mintCode(stack.newUser(), { idToken: { signature: 'unknown-kid' } }) }), status.INVALID_ARGUMENT, 'INVALID_ID_TOKEN');
    }
    // One refetch looks for a newly published key; the other four find the fetch too recent.
    expect(stack.google.stats().certs).to.equal(1);
  });

  it('picks up a new signing key before the cached certs expire', async () => {
    await stack.signIn(stack.newUser()); // certs cached
    stack.google.rotateSigningKeys();
    stack.google.resetStats();
    stack.clock.advance(31_000); // past the least interval between forced refetches, well inside max-age
    const user = stack.newUser();
    expect((await stack.signIn(user)).userId).to.equal(user.sub);
    expect(stack.google.stats().certs).to.equal(1);
  });

  it('answers UNAVAILABLE / UPSTREAM_UNAVAILABLE when the token endpoint keeps failing', async () => {
    stack.google.injectFault({ endpoint: 'token', kind: 'status', status: 503, times: 5 });
    await rejects({}, status.UNAVAILABLE, 'UPSTREAM_UNAVAILABLE');
  });

  it('answers UPSTREAM_UNAVAILABLE when throttled (429) beyond its retries', async () => {
    stack.google.injectFault({ endpoint: 'token', kind: 'status', status: 429, retryAfterSeconds: 1, times: 5 });
    await rejects({}, status.UNAVAILABLE, 'UPSTREAM_UNAVAILABLE');
  });
});

describe('ExchangeCode with a wrong client secret', () => {
  const stack = useStack({ brokerClientSecret: 'GOCSPX-wrong-secret-configured' });

  it('answers INTERNAL / OAUTH_CLIENT_REJECTED: an operator must fix the deployment', async () => {
    const user = stack.newUser();
    await expectGrpcError(stack.client.exchangeCode({ authCode: stack.mintCode(user) }), status.INTERNAL, 'OAUTH_CLIENT_REJECTED');
    expect(await stack.rawDocument(user.sub)).to.equal(undefined);
  });
});
