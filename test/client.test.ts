import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { isServiceError, reasonOf } from '../src/client/error-info';
import { TokenBrokerClient } from '../src/client/token-broker-client';
import { useStack } from './support/stack';

const DRIVE = 'https://www.googleapis.com/auth/drive.readonly';
const GMAIL = 'https://www.googleapis.com/auth/gmail.readonly';

describe('TokenBrokerClient for peer services', () => {
  const stack = useStack({ env: { TOKENBROKER_UPSTREAM_RETRIES: '0' } });
  const clientWith = (options: ConstructorParameters<typeof TokenBrokerClient>[1]) => new TokenBrokerClient(`127.0.0.1:${stack.app.port}`, options);

  it('retries a call answered UNAVAILABLE, within its deadline', async () => {
    const user = stack.newUser();
    await stack.signIn(user, { scopes: ['openid', DRIVE, GMAIL] });
    stack.google.injectFault({ endpoint: 'token', kind: 'status', status: 503, times: 1 });
    const plain = clientWith({});
    const retrying = clientWith({ retry: { attempts: 3, backoffMs: 20 }, defaultTimeoutMs: 5000 });
    try {
      const failed = await plain.getAccessToken({ userId: user.sub, scopes: [DRIVE] }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(reasonOf(failed)).to.equal('UPSTREAM_UNAVAILABLE');
      stack.google.injectFault({ endpoint: 'token', kind: 'status', status: 503, times: 1 });
      stack.google.resetStats();
      const token = await retrying.getAccessToken({ userId: user.sub, scopes: [GMAIL] });
      expect(token.scopes).to.deep.equal([GMAIL]);
      expect(stack.google.stats().refreshToken).to.equal(2);
    } finally {
      plain.close();
      retrying.close();
    }
  });

  it('applies its default deadline to calls that set none, and does not retry other errors', async () => {
    const user = stack.newUser();
    await stack.signIn(user, { scopes: ['openid', DRIVE] });
    stack.google.injectFault({ endpoint: 'token', kind: 'delay', ms: 1500 });
    const client = clientWith({ defaultTimeoutMs: 300, retry: { attempts: 3, backoffMs: 20 } });
    try {
      const started = Date.now();
      const err = await client.getAccessToken({ userId: user.sub, scopes: [DRIVE] }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isServiceError(err) && err.code).to.equal(status.DEADLINE_EXCEEDED);
      expect(Date.now() - started).to.be.below(1200);
      stack.google.resetStats();
      const missing = await client.getAccessToken({ userId: user.sub, scopes: [GMAIL] }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(reasonOf(missing)).to.equal('SCOPE_NOT_GRANTED');
      expect(stack.google.stats().refreshToken).to.equal(0);
    } finally {
      client.close();
    }
  });
});
