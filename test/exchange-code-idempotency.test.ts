import { Timestamp } from '@google-cloud/firestore';
import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { isServiceError } from '../src/client/error-info';
import { expectGrpcError, useStack } from './support/stack';
import { waitFor } from './support/wait-for';

describe('ExchangeCode retried with the same code', () => {
  const stack = useStack();

  it('answers a retry with the first answer, exchanging at Google once', async () => {
    const user = stack.newUser();
    const code = stack.mintCode(user);
    const first = await stack.client.exchangeCode({ authCode: code });
    const retry = await stack.client.exchangeCode({ authCode: code });
    expect(retry).to.deep.equal(first);
    expect(first.created).to.equal(true);
    expect(stack.google.stats().authorizationCode).to.equal(1);
  });

  it('answers a gateway retry after its timeout, while the first attempt is still running', async () => {
    const user = stack.newUser();
    const code = stack.mintCode(user);
    stack.google.injectFault({ endpoint: 'token', kind: 'delay', ms: 600 });
    const timedOut = await stack.client.exchangeCode({ authCode: code }, { timeoutMs: 200 }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isServiceError(timedOut) && timedOut.code).to.equal(status.DEADLINE_EXCEEDED);
    const retry = await stack.client.exchangeCode({ authCode: code });
    expect(retry.userId).to.equal(user.sub);
    expect(retry.created).to.equal(true);
    expect(stack.google.stats().authorizationCode).to.equal(1);
  });

  it('answers a retry reaching another replica while the first is in flight', async () => {
    const peer = await stack.startPeer();
    try {
      const user = stack.newUser();
      const code = stack.mintCode(user);
      stack.google.injectFault({ endpoint: 'token', kind: 'delay', ms: 500 });
      const first = stack.client.exchangeCode({ authCode: code });
      await waitFor(() => stack.google.stats().authorizationCode === 1, 'the first exchange to reach Google');
      const second = await peer.client.exchangeCode({ authCode: code });
      expect(second).to.deep.equal(await first);
      expect(stack.google.stats().authorizationCode).to.equal(1);
    } finally {
      await peer.close();
    }
  });

  it('keeps rejecting a bad code, and leaves no record of it', async () => {
    const code = '4/0never-issued-code-for-idempotency';
    await expectGrpcError(stack.client.exchangeCode({ authCode: code }), status.INVALID_ARGUMENT, 'INVALID_AUTH_CODE');
    await expectGrpcError(stack.client.exchangeCode({ authCode: code }), status.INVALID_ARGUMENT, 'INVALID_AUTH_CODE');
    const hash = createHash('sha256').update(code).digest('hex');
    expect((await stack.db.collection(`${stack.collection}_code_exchanges`).doc(hash).get()).exists).to.equal(false);
  });

  it('takes over a record past its window: a code reused later is exchanged at Google again (and refused there)', async () => {
    const user = stack.newUser();
    const code = stack.mintCode(user);
    await stack.client.exchangeCode({ authCode: code });
    stack.clock.advance(stack.config.tokens.exchangeReplayWindowMs + 1000);
    stack.google.resetStats();
    await expectGrpcError(stack.client.exchangeCode({ authCode: code }), status.INVALID_ARGUMENT, 'INVALID_AUTH_CODE');
    expect(stack.google.stats().authorizationCode).to.equal(1);
    const hash = createHash('sha256').update(code).digest('hex');
    expect((await stack.db.collection(`${stack.collection}_code_exchanges`).doc(hash).get()).exists).to.equal(false);
  });

  it('takes over a claim abandoned by a replica that died mid-exchange', async () => {
    const user = stack.newUser();
    const code = stack.mintCode(user);
    const hash = createHash('sha256').update(code).digest('hex');
    await stack.db
      .collection(`${stack.collection}_code_exchanges`)
      .doc(hash)
      .set({ state: 'PENDING', expires_at: Timestamp.fromMillis(stack.clock.now() - 1) });
    const answer = await stack.client.exchangeCode({ authCode: code });
    expect(answer.userId).to.equal(user.sub);
    const record = (await stack.db.collection(`${stack.collection}_code_exchanges`).doc(hash).get()).data();
    expect(record).to.include({ state: 'DONE', user_id: user.sub, created: true });
  });

  it('stores only a hash of the code', async () => {
    const user = stack.newUser();
    const code = stack.mintCode(user);
    await stack.client.exchangeCode({ authCode: code });
    const ledger = await stack.db.collection(`${stack.collection}_code_exchanges`).get();
    const docs = ledger.docs.map((d) => ({ id: d.id, data: JSON.stringify(d.data()) }));
    const hash = createHash('sha256').update(code).digest('hex');
    expect(docs.map((d) => d.id)).to.include(hash);
    for (const doc of docs) {
      expect(doc.id).to.not.include(code.slice(3));
      expect(doc.data).to.not.include(code.slice(3));
    }
  });
});
