import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { BearerTokenAuthenticator } from '../src/auth/bearer-token-authenticator';
import { expectGrpcError, useStack } from './support/stack';
import { ManualClock } from './support/manual-clock';

const GATEWAY = 'gateway@tb-test.iam.gserviceaccount.com';
const PHOTOS = 'photos@tb-test.iam.gserviceaccount.com';
const MAILER = 'mailer@tb-test.iam.gserviceaccount.com';
const DRIVE = 'https://www.googleapis.com/auth/drive.readonly';
const GMAIL = 'https://www.googleapis.com/auth/gmail.readonly';

const POLICY = `
callers:
  ${GATEWAY}:
    rpcs: [ExchangeCode]
  ${PHOTOS}:
    rpcs: [GetAccessToken]
    scopes: [${DRIVE}]
  ${MAILER}:
    rpcs: [GetAccessToken]
    scopes: [${GMAIL}]
`;

/** Parsed token_issued lines of `userId`. */
function auditLines(logs: string[], userId: string): Array<Record<string, unknown>> {
  return logs.filter((l) => l.includes('"event":"token_issued"') && l.includes(userId)).map((l) => JSON.parse(l) as Record<string, unknown>);
}

// A GetAccessToken whose token is in memory, from a caller verified before,
// is answered synchronously without the general path. These cases check it
// answers exactly what the general path would.
describe('GetAccessToken answered from memory', () => {
  describe('with caller authentication and a policy', () => {
    const stack = useStack({ policy: POLICY });

    async function signedInUser() {
      const user = stack.newUser();
      const gateway = stack.clientAs(GATEWAY);
      try {
        await gateway.exchangeCode({ authCode: stack.mintCode(user, { scopes: ['openid', 'email', DRIVE, GMAIL] }) });
      } finally {
        gateway.close();
      }
      return user;
    }

    it('answers the same message as the first call, with no upstream call and one audit line per call', async () => {
      const user = await signedInUser();
      const photos = stack.clientAs(PHOTOS);
      try {
        const first = await photos.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
        stack.google.resetStats();
        const again = [];
        for (let i = 0; i < 3; i += 1) again.push(await photos.getAccessToken({ userId: user.sub, scopes: [DRIVE] }));
        for (const answer of again) expect(answer).to.deep.equal(first);
        expect(stack.google.stats().token).to.equal(0);
        const audit = auditLines(stack.logs, user.sub);
        expect(audit).to.have.length(4);
        for (const line of audit) {
          expect(line).to.include({ rpc: 'GetAccessToken', code: 'OK', caller: PHOTOS, userId: user.sub });
          expect(line.scopes).to.deep.equal([DRIVE]);
          expect(line.latencyMs).to.be.a('number');
        }
        // The first call took the general path, the others the one from memory: the same line, field for field, in the same order.
        const [general, ...fromMemory] = audit.map(({ time: _time, latencyMs: _latency, ...rest }) => rest);
        for (const line of fromMemory) expect(JSON.stringify(line)).to.equal(JSON.stringify(general));
      } finally {
        photos.close();
      }
    });

    it('still refuses a caller whose policy lacks the scope of a cached token', async () => {
      const user = await signedInUser();
      const photos = stack.clientAs(PHOTOS);
      const mailer = stack.clientAs(MAILER);
      try {
        await photos.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
        await mailer.getAccessToken({ userId: user.sub, scopes: [GMAIL] });
        await expectGrpcError(mailer.getAccessToken({ userId: user.sub, scopes: [DRIVE] }), status.PERMISSION_DENIED, 'PERMISSION_DENIED');
        await expectGrpcError(photos.getAccessToken({ userId: user.sub, scopes: [GMAIL] }), status.PERMISSION_DENIED, 'PERMISSION_DENIED');
      } finally {
        photos.close();
        mailer.close();
      }
    });

    it('checks the input of a call whose user has a cached token', async () => {
      const user = await signedInUser();
      const photos = stack.clientAs(PHOTOS);
      try {
        const first = await photos.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
        // Repeated scopes are normalized, as on the general path.
        expect((await photos.getAccessToken({ userId: user.sub, scopes: [DRIVE, DRIVE] })).accessToken).to.equal(first.accessToken);
        await expectGrpcError(photos.getAccessToken({ userId: user.sub, scopes: [DRIVE], minTtl: { seconds: '-1', nanos: 0 } }), status.INVALID_ARGUMENT, 'INVALID_REQUEST');
      } finally {
        photos.close();
      }
    });
  });

  describe('without caller authentication (insecure-none)', () => {
    const stack = useStack();

    it('never lets a scope spelled with a space, or an empty one, match a cached key', async () => {
      const user = stack.newUser();
      await stack.signIn(user);
      // Cache the whole grant ('' key) and the two-scope key 'email openid'.
      await stack.client.getAccessToken({ userId: user.sub });
      await stack.client.getAccessToken({ userId: user.sub, scopes: ['openid', 'email'] });
      await expectGrpcError(stack.client.getAccessToken({ userId: user.sub, scopes: ['email openid'] }), status.INVALID_ARGUMENT, 'INVALID_REQUEST');
      await expectGrpcError(stack.client.getAccessToken({ userId: user.sub, scopes: [''] }), status.INVALID_ARGUMENT, 'INVALID_REQUEST');
      // Unsorted input still gets the cached token of its set.
      const sorted = await stack.client.getAccessToken({ userId: user.sub, scopes: ['email', 'openid'] });
      const unsorted = await stack.client.getAccessToken({ userId: user.sub, scopes: ['openid', 'email'] });
      expect(unsorted.accessToken).to.equal(sorted.accessToken);
    });
  });

  describe('BearerTokenAuthenticator.knownIdentity', () => {
    it('knows a verified caller only until its token expires, and never an unverified one', async () => {
      const clock = new ManualClock();
      let verifications = 0;
      const authenticator = new BearerTokenAuthenticator(
        {
          verify: () => {
            verifications += 1;
            return Promise.resolve({ email: PHOTOS, emailVerified: true, expiresAt: clock.now() + 60_000 });
          },
        },
        { maxCached: 10, clock },
      );
      const credentials = { authorization: 'Bearer aaa.bbb.ccc' };
      expect(authenticator.knownIdentity(credentials)).to.equal(undefined);
      expect(await authenticator.authenticate(credentials)).to.equal(PHOTOS);
      expect(authenticator.knownIdentity(credentials)).to.equal(PHOTOS);
      expect(authenticator.knownIdentity({ authorization: 'Bearer aaa.bbb.ccd' })).to.equal(undefined);
      expect(authenticator.knownIdentity({})).to.equal(undefined);
      clock.advance(60_000);
      expect(authenticator.knownIdentity(credentials)).to.equal(undefined);
      expect(verifications).to.equal(1);
    });
  });
});
