import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { FirestoreEmulator } from '../src/local/firestore-emulator';
import { expectGrpcError, TestStack } from './support/stack';
import { waitFor } from './support/wait-for';

// One story in order: a stack on an emulator of its own, which is stopped mid-way.
describe('Firestore outage', function () {
  this.timeout(60_000);
  let emulator: FirestoreEmulator;
  let stack: TestStack;
  const cached = { sub: '' };

  before(async () => {
    emulator = await FirestoreEmulator.start({ projectId: 'tokenbroker-outage' });
    stack = await TestStack.start({ emulator, env: { TOKENBROKER_STORE_TIMEOUT_MS: '500' } });
    // A fresh emulator's first requests pay for JVM warm-up, beyond the 500 ms deadline.
    await stack.db.collection('warm-up').doc('x').set({ at: 1 });
    await stack.db.collection('warm-up').doc('x').get();
    const user = stack.newUser();
    await stack.signIn(user); // its access token is now in memory
    cached.sub = user.sub;
  });
  after(async () => {
    await stack.close();
    await emulator.stop();
  });

  it('revokes at Google the refresh token of an exchange whose grant could not be stored, and answers UNAVAILABLE', async () => {
    stack.google.resetStats();
    stack.google.injectFault({ endpoint: 'token', kind: 'delay', ms: 800 });
    const exchange = stack.client.exchangeCode({ authCode: stack.mintCode(stack.newUser()) });
    await waitFor(() => stack.google.stats().authorizationCode === 1, 'the exchange to reach Google');
    await emulator.stop(); // Google has the code; the store goes away before the grant is written
    await expectGrpcError(exchange, status.UNAVAILABLE, 'STORE_UNAVAILABLE');
    expect(stack.google.stats()).to.include({ revoke: 1, revokeTokenInQuery: 0 });
  });

  it('keeps serving cached access tokens while the store is down', async () => {
    stack.google.resetStats();
    const token = await stack.client.getAccessToken({ userId: cached.sub });
    expect(token.accessToken).to.match(/^ya29\./);
    expect(stack.google.stats().token).to.equal(0);
  });

  it('fails what needs the store with UNAVAILABLE within its deadline, spending no auth code', async () => {
    stack.google.resetStats();
    await expectGrpcError(stack.client.getProfile({ userId: stack.newUser().sub }), status.UNAVAILABLE, 'STORE_UNAVAILABLE');
    await expectGrpcError(stack.client.getAccessToken({ userId: stack.newUser().sub }), status.UNAVAILABLE, 'STORE_UNAVAILABLE');
    await expectGrpcError(stack.client.exchangeCode({ authCode: stack.mintCode(stack.newUser()) }), status.UNAVAILABLE, 'STORE_UNAVAILABLE');
    expect(stack.google.stats().token).to.equal(0);
  });

  it('recovers by itself when the store is back', async () => {
    emulator = await FirestoreEmulator.start({ projectId: 'tokenbroker-outage', port: Number(emulator.host.split(':')[1]) });
    const user = stack.newUser();
    // The emulator came back empty (it keeps data in memory): a new sign-in works without a restart.
    let signedIn;
    let lastError: unknown;
    for (let attempt = 0; !signedIn && attempt < 20; attempt += 1) {
      // The first calls may meet a cold JVM; each attempt is a fresh sign-in with consent.
      signedIn = await stack.signIn(user, { consent: true }).catch((err: unknown) => {
        lastError = err;
        return undefined;
      });
    }
    expect(signedIn?.userId, String(lastError)).to.equal(user.sub);
    expect((await stack.client.getProfile({ userId: user.sub })).profile?.email).to.equal(user.email);
  });
});
