import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { Sealer } from '../src/crypto/sealer';
import { TokenBroker } from '../src/domain/token-broker';
import type { ExchangeLedger, GoogleOAuth, GrantStore, RevocationLedger, SharedTokenStore } from '../src/domain/ports';
import { expectGrpcError, useStack } from './support/stack';

const INVALID_USER_IDS = ['', 'a/b', '..', '__x__', '9'.repeat(300), 'abc123', '12 34', '123/../456', '-1', '１２３'];

/** A port that fails the test the moment it is touched. */
function untouchable<T extends object>(name: string): T {
  return new Proxy({} as T, {
    get: (_target, prop) => () => {
      throw new Error(`${name}.${String(prop)} was called`);
    },
  });
}

describe('user_id validation', () => {
  describe('through gRPC', () => {
    const stack = useStack();

    for (const userId of INVALID_USER_IDS) {
      it(`rejects ${JSON.stringify(userId.length > 20 ? `${userId.slice(0, 10)}… (${userId.length} chars)` : userId)} on GetAccessToken and GetProfile`, async () => {
        stack.google.resetStats();
        await expectGrpcError(stack.client.getAccessToken({ userId }), status.INVALID_ARGUMENT, 'INVALID_REQUEST');
        await expectGrpcError(stack.client.getProfile({ userId }), status.INVALID_ARGUMENT, 'INVALID_REQUEST');
        expect(stack.google.stats().token).to.equal(0);
      });
    }

    it('accepts a 255-digit user ID (and finds no such user)', async () => {
      await expectGrpcError(stack.client.getProfile({ userId: '7'.repeat(255) }), status.NOT_FOUND, 'USER_NOT_FOUND');
    });
  });

  describe('in the domain', () => {
    const broker = new TokenBroker(
      {
        store: untouchable<GrantStore>('store'),
        shared: untouchable<SharedTokenStore>('shared'),
        revocations: untouchable<RevocationLedger>('revocations'),
        exchanges: untouchable<ExchangeLedger>('exchanges'),
        oauth: untouchable<GoogleOAuth>('oauth'),
        sealer: untouchable<Sealer>('sealer'),
        clock: { now: () => 0 },
        logger: untouchable('logger'),
      },
      { allowedAppClientIds: [], defaultMinTtlMs: 300_000, maxMinTtlMs: 3_300_000, profileCacheTtlMs: 0, maxCachedUsers: 10, exchangeReplayWindowMs: 0, exchangePendingTimeoutMs: 1000, callTimeoutMs: 1000, refreshLeaseMs: 2000 },
    );

    it('refuses every malformed user_id before touching the store, Google or the keys', async () => {
      for (const userId of INVALID_USER_IDS) {
        for (const call of [() => broker.getAccessToken(userId, []), () => broker.getProfile(userId), () => broker.revokeUser(userId)]) {
          const err = await call().then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(err, userId).to.have.property('code', 'INVALID_REQUEST');
        }
      }
    });
  });
});
