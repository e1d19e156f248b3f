import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { expectGrpcError, TestStack, useStack } from './support/stack';

describe('GetProfile', () => {
  const stack = useStack({ env: { TOKENBROKER_PROFILE_CACHE_TTL_SECONDS: '60' } });

  it('returns the profile stored by ExchangeCode', async () => {
    const user = stack.newUser({ locale: 'fr', hostedDomain: 'corp.example' });
    const signedIn = await stack.signIn(user);
    const res = await stack.client.getProfile({ userId: user.sub });
    expect(res.profile).to.deep.equal(signedIn.profile);
    expect(res.profile).to.include({ email: user.email, locale: 'fr', hostedDomain: 'corp.example' });
  });

  it('reads the profile from Firestore for a user this instance has not seen', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    // A second instance sharing the store knows nothing in memory.
    const other = await TestStack.start();
    try {
      await other.db.collection(other.collection).doc(user.sub).set((await stack.rawDocument(user.sub)) as Record<string, unknown>);
      const res = await other.client.getProfile({ userId: user.sub });
      expect(res.profile?.email).to.equal(user.email);
    } finally {
      await other.close();
    }
  });

  it('answers NOT_FOUND / USER_NOT_FOUND for an unknown user', async () => {
    await expectGrpcError(stack.client.getProfile({ userId: stack.newUser().sub }), status.NOT_FOUND, 'USER_NOT_FOUND');
  });

  it('still returns the profile while the grant is dead', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    stack.clock.advance(3600_000);
    stack.google.revokeUser(user.sub);
    await expectGrpcError(stack.client.getAccessToken({ userId: user.sub }), status.FAILED_PRECONDITION, 'REAUTH_REQUIRED');
    const res = await stack.client.getProfile({ userId: user.sub });
    expect(res.profile?.userId).to.equal(user.sub);
  });
});
