import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { GrantState } from '../src/gen/tokenbroker/v1/token_broker';
import { leakedSecrets } from './support/log-capture';
import { expectGrpcError, SIGN_IN_SCOPES, useStack } from './support/stack';

const DRIVE = 'https://www.googleapis.com/auth/drive.readonly';

describe('GetGrantStatus', () => {
  const stack = useStack();

  it('describes a fresh grant: active, its scopes, when it was stored and signed in, never refreshed', async () => {
    const user = stack.newUser();
    const before = Date.now();
    await stack.signIn(user);
    const res = await stack.client.getGrantStatus({ userId: user.sub });
    expect(res.state).to.equal(GrantState.GRANT_STATE_ACTIVE);
    expect(res.deadReason).to.equal('');
    expect(res.scopes).to.deep.equal([...SIGN_IN_SCOPES].sort());
    expect(res.createTime?.getTime()).to.equal(stack.clock.now());
    // ID tokens carry whole seconds.
    expect(res.signInTime?.getTime()).to.be.within(Math.floor(before / 1000) * 1000, Date.now());
    expect(res.lastRefreshTime).to.equal(undefined);
    expect(leakedSecrets(JSON.stringify(res))).to.deep.equal([]);
  });

  it('records when a refresh last reached Google', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    stack.clock.advance(60_000);
    await stack.client.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
    const res = await stack.client.getGrantStatus({ userId: user.sub });
    expect(res.lastRefreshTime?.getTime()).to.equal(stack.clock.now());
  });

  it('reports a dead grant with Google\'s reason', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    stack.google.revokeUser(user.sub);
    await expectGrpcError(stack.client.getAccessToken({ userId: user.sub, scopes: [DRIVE] }), status.FAILED_PRECONDITION, 'REAUTH_REQUIRED');
    const res = await stack.client.getGrantStatus({ userId: user.sub });
    expect(res.state).to.equal(GrantState.GRANT_STATE_REAUTH_REQUIRED);
    expect(res.deadReason).to.equal('invalid_grant');
  });

  it('answers USER_NOT_FOUND for an unknown user', async () => {
    await expectGrpcError(stack.client.getGrantStatus({ userId: '999999999999999999999' }), status.NOT_FOUND, 'USER_NOT_FOUND');
  });
});
