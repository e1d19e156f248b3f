import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { runRetryRevocations } from '../src/app';
import { loadConfig } from '../src/config/config';
import { GoogleRevocation } from '../src/gen/tokenbroker/v1/token_broker';
import { captureLogs } from './support/log-capture';
import { expectGrpcError, useStack } from './support/stack';

const DRIVE = 'https://www.googleapis.com/auth/drive.readonly';

describe('RevokeUser', function () {
  this.timeout(30_000);
  const stack = useStack({ env: { TOKENBROKER_UPSTREAM_RETRIES: '0' } });
  const revocations = () => stack.db.collection(`${stack.collection}_revocations`);
  const sharedRecords = (userId: string) => stack.db.collection(`${stack.collection}_access_tokens`).where('user_id', '==', userId).get();

  it('revokes at Google with the token in the body, deletes everything stored, and logs an audit line', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    await stack.client.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
    expect((await sharedRecords(user.sub)).size).to.equal(1);
    stack.google.resetStats();
    const res = await stack.client.revokeUser({ userId: user.sub });
    expect(res).to.deep.equal({ wasStored: true, googleRevocation: GoogleRevocation.GOOGLE_REVOCATION_DONE });
    expect(stack.google.stats()).to.include({ revoke: 1, revokeTokenInQuery: 0 });
    expect(await stack.rawDocument(user.sub)).to.equal(undefined);
    expect((await sharedRecords(user.sub)).size).to.equal(0);
    await expectGrpcError(stack.client.getAccessToken({ userId: user.sub }), status.NOT_FOUND, 'USER_NOT_FOUND');
    await expectGrpcError(stack.client.getProfile({ userId: user.sub }), status.NOT_FOUND, 'USER_NOT_FOUND');
    expect(stack.logs.some((line) => line.includes('"event":"user_revoked"') && line.includes(user.sub) && line.includes('"google":"DONE"'))).to.equal(true);
  });

  it('is idempotent: an already revoked or unknown user succeeds without calling Google', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    await stack.client.revokeUser({ userId: user.sub });
    stack.google.resetStats();
    const again = await stack.client.revokeUser({ userId: user.sub });
    const unknown = await stack.client.revokeUser({ userId: '999999999999999999999' });
    for (const res of [again, unknown]) expect(res).to.deep.equal({ wasStored: false, googleRevocation: GoogleRevocation.GOOGLE_REVOCATION_NOT_NEEDED });
    expect(stack.google.stats().revoke).to.equal(0);
  });

  it('lets the user sign in again afterwards', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    await stack.client.revokeUser({ userId: user.sub });
    const again = await stack.signIn(user, { consent: true });
    expect(again.created).to.equal(true);
    expect((await stack.client.getAccessToken({ userId: user.sub, scopes: [DRIVE] })).accessToken).to.be.a('string');
  });

  it('deletes locally when Google fails, keeps the revocation pending, and retry-revocations completes it', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    stack.google.injectFault({ endpoint: 'revoke', kind: 'status', status: 503 });
    const res = await stack.client.revokeUser({ userId: user.sub });
    expect(res).to.deep.equal({ wasStored: true, googleRevocation: GoogleRevocation.GOOGLE_REVOCATION_PENDING });
    expect(await stack.rawDocument(user.sub)).to.equal(undefined);
    const pending = (await revocations().doc(user.sub).get()).data();
    expect(pending).to.include({ awaiting_google: true, user_id: user.sub });
    stack.google.resetStats();
    const config = loadConfig(stack.env);
    const first = await runRetryRevocations(config, { logDestination: captureLogs() });
    expect(first).to.include({ revoked: 1, failed: 0, unreadable: 0 });
    expect(stack.google.stats().revoke).to.equal(1);
    expect((await revocations().doc(user.sub).get()).data()).to.include({ awaiting_google: false }).and.not.have.property('pending');
    const second = await runRetryRevocations(config, { logDestination: captureLogs() });
    expect(second.pending).to.equal(0);
  });

  it('stops other replicas serving the user\'s cached token within seconds', async () => {
    const peer = await stack.startPeer();
    try {
      const user = stack.newUser();
      await stack.signIn(user);
      await peer.client.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
      stack.google.resetStats();
      // Cached on the peer: served without Google or Firestore.
      await peer.client.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
      expect(stack.google.stats().refreshToken).to.equal(0);
      const revokedAt = Date.now();
      await stack.client.revokeUser({ userId: user.sub });
      let refusedAfterMs: number | undefined;
      while (refusedAfterMs === undefined && Date.now() - revokedAt < 5000) {
        const served = await peer.client.getAccessToken({ userId: user.sub, scopes: [DRIVE] }).then(
          () => true,
          () => false,
        );
        if (!served) refusedAfterMs = Date.now() - revokedAt;
        else await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(refusedAfterMs, 'the peer stopped serving the revoked user').to.be.a('number');
      await expectGrpcError(peer.client.getAccessToken({ userId: user.sub, scopes: [DRIVE] }), status.NOT_FOUND, 'USER_NOT_FOUND');
    } finally {
      await peer.close();
    }
  });
});
