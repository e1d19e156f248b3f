import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { SECURITY_EVENT_TYPES } from '../src/domain/security-events';
import { FirestoreEmulator } from '../src/local/firestore-emulator';
import { GrantState } from '../src/gen/tokenbroker/v1/token_broker';
import type { SecurityEventTokenOptions } from '../src/local/oauth-server';
import { issuedSecrets, leakedSecrets } from './support/log-capture';
import { APP_CLIENT_ID, expectGrpcError, SERVER_CLIENT_ID, TestStack, useStack } from './support/stack';

const DRIVE = 'https://www.googleapis.com/auth/drive.readonly';

interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request to the receiver on 127.0.0.1, answered in full. */
function httpRequest(port: number, options: { method?: string; path?: string; body?: string | Buffer; headers?: Record<string, string> }): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: options.method ?? 'POST', path: options.path ?? '/risc', headers: options.headers ?? {}, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

describe('Cross-Account Protection (RISC) receiver', () => {
  const stack = useStack({ env: { TOKENBROKER_RISC_PORT: '0', TOKENBROKER_METRICS_PORT: '0' } });

  const riscPort = () => stack.app.riscPort as number;

  /**
   * A SET signed by the local Google for our server client, issued now on
   * the real clock, as the ID tokens of sign-ins are (an event older than
   * the stored sign-in does not end it).
   */
  function sign(events: Record<string, unknown>, options: Partial<SecurityEventTokenOptions> = {}): string {
    const token = stack.google.signSecurityEvent({ aud: SERVER_CLIENT_ID, iat: Math.floor(Date.now() / 1000), events, ...options });
    issuedSecrets.add(token);
    return token;
  }

  /** One account event about `sub` (subject_type iss-sub, as Google sends it). */
  function accountEvent(name: keyof typeof SECURITY_EVENT_TYPES, sub: string, extra: Record<string, unknown> = {}) {
    return { [SECURITY_EVENT_TYPES[name]]: { subject: { subject_type: 'iss-sub', iss: stack.google.riscIssuer, sub }, ...extra } };
  }

  function push(token: string, headers: Record<string, string> = { 'content-type': 'application/secevent+jwt' }) {
    return httpRequest(riscPort(), { body: token, headers });
  }

  /** tokenbroker_grants_marked_dead_total{reason="security_event"} as the stack's /metrics says now. */
  async function deadBySecurityEvents(): Promise<number> {
    const body = await (await fetch(`http://127.0.0.1:${stack.app.metricsPort as number}/metrics`)).text();
    const line = body.split('\n').find((l) => l.startsWith('tokenbroker_grants_marked_dead_total{reason="security_event"}'));
    return Number(line?.split(' ').pop() ?? NaN);
  }

  async function grantDoc(userId: string) {
    return (await stack.rawDocument(userId)) as Record<string, unknown>;
  }

  async function signedInUser() {
    const user = stack.newUser();
    await stack.signIn(user, { consent: true });
    return user;
  }

  it('serves its port only when TOKENBROKER_RISC_PORT is set, on the configured host', () => {
    expect(riscPort()).to.be.a('number').greaterThan(0);
  });

  describe('tokens-revoked', () => {
    it('answers 202, marks the grant dead without deleting it, and no replica serves its cached token any more', async () => {
      const user = await signedInUser();
      const peer = await stack.startPeer();
      try {
        // Both replicas hold an access token in memory.
        await stack.client.getAccessToken({ userId: user.sub });
        await peer.client.getAccessToken({ userId: user.sub });
        stack.google.resetStats();
        const deadBefore = await deadBySecurityEvents();

        const answer = await push(sign(accountEvent('tokens-revoked', user.sub)));
        expect(answer.status).to.equal(202);
        expect(await deadBySecurityEvents()).to.equal(deadBefore + 1);

        const doc = await grantDoc(user.sub);
        expect(doc.status).to.equal('REAUTH_REQUIRED');
        expect(doc.dead_reason).to.equal('risc_tokens_revoked');
        expect(doc.refresh_token, 'the refresh token is kept').to.be.an('object');
        await expectGrpcError(stack.client.getAccessToken({ userId: user.sub }), status.FAILED_PRECONDITION, 'REAUTH_REQUIRED');

        // The other replica learns it through the revocation ledger's feed.
        const started = Date.now();
        for (;;) {
          const served = await peer.client.getAccessToken({ userId: user.sub }).then(
            () => true,
            () => false,
          );
          if (!served) break;
          if (Date.now() - started > 10_000) throw new Error('the second replica kept serving the cached token');
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        await expectGrpcError(peer.client.getAccessToken({ userId: user.sub }), status.FAILED_PRECONDITION, 'REAUTH_REQUIRED');
        expect(stack.google.stats().refreshToken, 'nothing asked Google').to.equal(0);
        const shared = await stack.db.collection(`${stack.collection}_access_tokens`).get();
        expect(shared.docs.filter((d) => d.id.startsWith(`${user.sub}_`)), 'shared access tokens deleted').to.deep.equal([]);

        const grantStatus = await stack.client.getGrantStatus({ userId: user.sub });
        expect(grantStatus.state).to.equal(GrantState.GRANT_STATE_REAUTH_REQUIRED);
        expect(grantStatus.deadReason).to.equal('risc_tokens_revoked');
        expect(grantStatus.securityEvents.map((e) => e.type)).to.deep.equal(['tokens-revoked']);
      } finally {
        await peer.close();
      }
    });

    it('leaves a grant alone whose sign-in is newer than the event', async () => {
      const user = await signedInUser();
      const answer = await push(sign(accountEvent('tokens-revoked', user.sub), { iat: Math.floor(Date.now() / 1000) - 3600 }));
      expect(answer.status).to.equal(202);
      expect((await grantDoc(user.sub)).status).to.equal('ACTIVE');
      expect(stack.logs.some((l) => l.includes('"outcome":"grant_newer_than_event"') && l.includes(user.sub))).to.equal(true);
    });
  });

  describe('account-disabled and account-enabled', () => {
    it('marks the grant dead with the reason recorded, and account-enabled makes it active again', async () => {
      const user = await signedInUser();
      expect((await push(sign(accountEvent('account-disabled', user.sub, { reason: 'hijacking' })))).status).to.equal(202);
      let doc = await grantDoc(user.sub);
      expect(doc.status).to.equal('REAUTH_REQUIRED');
      expect(doc.dead_reason).to.equal('risc_account_disabled');
      await expectGrpcError(stack.client.getAccessToken({ userId: user.sub }), status.FAILED_PRECONDITION, 'REAUTH_REQUIRED');

      stack.clock.advance(1000);
      expect((await push(sign(accountEvent('account-enabled', user.sub)))).status).to.equal(202);
      doc = await grantDoc(user.sub);
      expect(doc.status).to.equal('ACTIVE');
      expect(doc).to.not.have.property('dead_reason');
      const token = await stack.client.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
      expect(token.accessToken).to.be.a('string').and.not.equal('');

      const grantStatus = await stack.client.getGrantStatus({ userId: user.sub });
      expect(grantStatus.securityEvents.map((e) => [e.type, e.reason])).to.deep.equal([
        ['account-disabled', 'hijacking'],
        ['account-enabled', ''],
      ]);
      expect(grantStatus.securityEvents[1]?.receiveTime?.getTime()).to.equal(stack.clock.now());
    });

    it('account-enabled does not revive a grant that died of anything else', async () => {
      const user = await signedInUser();
      await push(sign(accountEvent('account-disabled', user.sub, { reason: 'bulk-account' })));
      await push(sign(accountEvent('tokens-revoked', user.sub)));
      await push(sign(accountEvent('account-enabled', user.sub)));
      const doc = await grantDoc(user.sub);
      expect(doc.status).to.equal('REAUTH_REQUIRED');
      expect(doc.dead_reason).to.equal('risc_tokens_revoked');

      const other = await signedInUser();
      stack.google.revokeUser(other.sub);
      await expectGrpcError(stack.client.getAccessToken({ userId: other.sub, scopes: [DRIVE] }), status.FAILED_PRECONDITION, 'REAUTH_REQUIRED');
      await push(sign(accountEvent('account-enabled', other.sub)));
      expect((await grantDoc(other.sub)).dead_reason).to.equal('invalid_grant');
    });
  });

  describe('token-revoked', () => {
    it('finds the grant by the stored hash of its refresh token and marks it dead', async () => {
      const user = await signedInUser();
      const bystander = await signedInUser();
      const hash = (await grantDoc(user.sub)).refresh_token_hash as string;
      expect(hash).to.be.a('string');
      const event = {
        [SECURITY_EVENT_TYPES['token-revoked']]: {
          subject: { subject_type: 'oauth_token', token_type: 'refresh_token', token_identifier_alg: 'hash_base64_sha512_sha512', token: hash },
        },
      };
      expect((await push(sign(event))).status).to.equal(202);
      const doc = await grantDoc(user.sub);
      expect(doc.status).to.equal('REAUTH_REQUIRED');
      expect(doc.dead_reason).to.equal('risc_token_revoked');
      expect((await grantDoc(bystander.sub)).status).to.equal('ACTIVE');
      await expectGrpcError(stack.client.getAccessToken({ userId: user.sub }), status.FAILED_PRECONDITION, 'REAUTH_REQUIRED');
    });

    it('accepts a token named by prefix, which matches nothing stored, and logs that', async () => {
      const user = await signedInUser();
      const event = {
        [SECURITY_EVENT_TYPES['token-revoked']]: {
          subject: { subject_type: 'oauth_token', token_type: 'refresh_token', token_identifier_alg: 'prefix', token: '1//0gabcdefghijk' },
        },
      };
      expect((await push(sign(event))).status).to.equal(202);
      expect((await grantDoc(user.sub)).status).to.equal('ACTIVE');
      expect(stack.logs.some((l) => l.includes('"outcome":"token_prefix_unmatchable"'))).to.equal(true);
      expect(stack.logs.some((l) => l.includes('1//0gabcdefghijk')), 'the prefix is never logged').to.equal(false);
    });

    it('accepts a hash that matches no grant', async () => {
      const event = {
        [SECURITY_EVENT_TYPES['token-revoked']]: {
          subject: { subject_type: 'oauth_token', token_type: 'refresh_token', token_identifier_alg: 'hash_base64_sha512_sha512', token: createHash('sha512').update('x').digest('base64') },
        },
      };
      expect((await push(sign(event))).status).to.equal(202);
    });
  });

  describe('events recorded for callers', () => {
    it('records sessions-revoked and account-credential-change-required on the grant, which stays active', async () => {
      const user = await signedInUser();
      const first = Math.floor(stack.clock.now() / 1000);
      await push(sign(accountEvent('sessions-revoked', user.sub), { iat: first }));
      stack.clock.advance(5000);
      await push(sign(accountEvent('account-credential-change-required', user.sub)));
      const grantStatus = await stack.client.getGrantStatus({ userId: user.sub });
      expect(grantStatus.state).to.equal(GrantState.GRANT_STATE_ACTIVE);
      expect(grantStatus.securityEvents.map((e) => e.type)).to.deep.equal(['sessions-revoked', 'account-credential-change-required']);
      expect(grantStatus.securityEvents[0]?.eventTime?.getTime()).to.equal(first * 1000);
      expect(grantStatus.securityEvents[1]?.receiveTime?.getTime()).to.equal(stack.clock.now());
      expect(leakedSecrets(JSON.stringify(grantStatus))).to.deep.equal([]);
      await stack.client.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
    });

    it('a new sign-in with a new refresh token starts the list afresh', async () => {
      const user = await signedInUser();
      await push(sign(accountEvent('sessions-revoked', user.sub)));
      await stack.signIn(user, { consent: true });
      expect((await stack.client.getGrantStatus({ userId: user.sub })).securityEvents).to.deep.equal([]);
    });
  });

  describe('other events', () => {
    it('accepts a verification event and logs its state', async () => {
      const state = `state-${randomBytes(4).toString('hex')}`;
      expect((await push(sign({ [SECURITY_EVENT_TYPES.verification]: { state } }))).status).to.equal(202);
      expect(stack.logs.some((l) => l.includes('"outcome":"verified"') && l.includes(state))).to.equal(true);
    });

    it('accepts an unknown event type and logs the type', async () => {
      const type = 'https://schemas.openid.net/secevent/risc/event-type/identifier-changed';
      const user = await signedInUser();
      expect((await push(sign({ [type]: { subject: { subject_type: 'iss-sub', iss: stack.google.riscIssuer, sub: user.sub } } }))).status).to.equal(202);
      expect(stack.logs.some((l) => l.includes('"outcome":"unknown_event_type"') && l.includes(type))).to.equal(true);
      expect((await grantDoc(user.sub)).status).to.equal('ACTIVE');
    });

    it('accepts an event about a user it does not know, and stores nothing for them', async () => {
      const stranger = stack.newUser();
      expect((await push(sign(accountEvent('tokens-revoked', stranger.sub)))).status).to.equal(202);
      expect(await stack.rawDocument(stranger.sub)).to.equal(undefined);
      expect(stack.logs.some((l) => l.includes('"outcome":"unknown_user"') && l.includes(stranger.sub))).to.equal(true);
    });

    it('accepts a token for one of the app client IDs', async () => {
      const user = await signedInUser();
      expect((await push(sign(accountEvent('sessions-revoked', user.sub), { aud: APP_CLIENT_ID }))).status).to.equal(202);
      expect((await stack.client.getGrantStatus({ userId: user.sub })).securityEvents).to.have.length(1);
    });
  });

  describe('replays', () => {
    it('answers 202 to a replayed jti and changes nothing', async () => {
      const user = await signedInUser();
      const jti = `jti-${randomBytes(8).toString('hex')}`;
      const disable = sign(accountEvent('account-disabled', user.sub, { reason: 'hijacking' }), { jti });
      expect((await push(disable)).status).to.equal(202);
      await push(sign(accountEvent('account-enabled', user.sub)));
      expect((await grantDoc(user.sub)).status).to.equal('ACTIVE');

      expect((await push(disable)).status).to.equal(202);
      expect((await grantDoc(user.sub)).status, 'the replay did not disable the grant again').to.equal('ACTIVE');
      const types = (await stack.client.getGrantStatus({ userId: user.sub })).securityEvents.map((e) => e.type);
      expect(types).to.deep.equal(['account-disabled', 'account-enabled']);

      const ledger = await stack.db.collection(`${stack.collection}_security_events`).doc(createHash('sha256').update(jti).digest('hex')).get();
      expect(ledger.get('jti')).to.equal(jti);
      expect(ledger.get('event_types')).to.deep.equal(['account-disabled']);
      expect(ledger.get('expire_at').toMillis()).to.be.greaterThan(stack.clock.now());
      expect(stack.logs.some((l) => l.includes('"event":"security_event_replayed"') && l.includes(jti))).to.equal(true);
    });
  });

  describe('rejections', () => {
    async function expectRejected(body: string, err: string) {
      const answer = await push(body);
      expect(answer.status).to.equal(400);
      expect((JSON.parse(answer.body) as { err: string }).err).to.equal(err);
    }

    /** A tokens-revoked event about a stored user, spoiled as `options` says: 400 `err`, grant untouched, token never echoed or logged. */
    async function rejectsAndChangesNothing(options: Partial<SecurityEventTokenOptions>, err: string) {
      const user = await signedInUser();
      const token = sign(accountEvent('tokens-revoked', user.sub), options);
      const answer = await push(token);
      expect(answer.status).to.equal(400);
      const body = JSON.parse(answer.body) as { err: string; description: string };
      expect(body.err).to.equal(err);
      expect(answer.body).to.not.include(token);
      expect((await grantDoc(user.sub)).status, 'nothing changed').to.equal('ACTIVE');
      expect(stack.logs.some((l) => l.includes(token)), 'the token is never logged').to.equal(false);
    }

    it('refuses a bad signature', () => rejectsAndChangesNothing({ signature: 'tampered' }, 'authentication_failed'));
    it('refuses alg none', () => rejectsAndChangesNothing({ signature: 'alg-none' }, 'invalid_request'));
    it('refuses HS256 keyed with the published public key', () => rejectsAndChangesNothing({ signature: 'hs256-public-key' }, 'invalid_request'));
    it('refuses a key ID the RISC key set does not publish', () => rejectsAndChangesNothing({ signature: 'unknown-kid' }, 'invalid_key'));
    it('refuses another audience', () => rejectsAndChangesNothing({ aud: '999-someone-else.apps.googleusercontent.com' }, 'invalid_audience'));
    it('refuses another issuer', () => rejectsAndChangesNothing({ iss: 'https://accounts.example.com/' }, 'invalid_issuer'));
    it('refuses an iat in the future', () => rejectsAndChangesNothing({ iat: Math.floor(stack.clock.now() / 1000) + 3600 }, 'invalid_request'));
    it('refuses a token without jti', () => rejectsAndChangesNothing({ jti: '' }, 'invalid_request'));

    it('refuses a body that is not a token', async () => {
      await expectRejected('not a token', 'invalid_request');
      await expectRejected('a.b.c', 'invalid_request');
    });

    it('takes a rotated key once the minimum refetch interval has passed', async () => {
      const user = await signedInUser();
      expect((await push(sign(accountEvent('sessions-revoked', user.sub)))).status).to.equal(202);
      stack.google.rotateRiscSigningKeys();
      const fresh = sign(accountEvent('account-credential-change-required', user.sub));
      const early = await push(fresh);
      expect(early.status, 'no refetch within the interval').to.equal(400);
      expect((JSON.parse(early.body) as { err: string }).err).to.equal('invalid_key');
      stack.clock.advance(31_000);
      expect((await push(fresh)).status).to.equal(202);
    });
  });

  describe('HTTP', () => {
    it('answers 413 to a body over 64 KiB', async () => {
      const answer = await httpRequest(riscPort(), { body: Buffer.alloc(65 * 1024, 0x61), headers: { 'content-type': 'application/secevent+jwt' } });
      expect(answer.status).to.equal(413);
    });

    it('answers 405 to another method and 404 to another path', async () => {
      const get = await httpRequest(riscPort(), { method: 'GET' });
      expect(get.status).to.equal(405);
      expect(get.headers.allow).to.equal('POST');
      expect((await httpRequest(riscPort(), { path: '/other', body: 'x' })).status).to.equal(404);
      expect((await httpRequest(riscPort(), { method: 'GET', path: '/healthz' })).status).to.equal(200);
    });
  });
});

describe('Cross-Account Protection (RISC) receiver when something it needs is down', function () {
  this.timeout(60_000);

  function tokensRevoked(stack: TestStack, sub: string): string {
    const token = stack.google.signSecurityEvent({
      aud: SERVER_CLIENT_ID,
      events: { [SECURITY_EVENT_TYPES['tokens-revoked']]: { subject: { subject_type: 'iss-sub', iss: stack.google.riscIssuer, sub } } },
    });
    issuedSecrets.add(token);
    return token;
  }

  it('answers 503 while the RISC key set cannot be read, so Google retries', async () => {
    const stack = await TestStack.start({ env: { TOKENBROKER_RISC_PORT: '0', TOKENBROKER_RISC_JWKS_URL: 'http://127.0.0.1:1/risc/jwks' } });
    try {
      const user = stack.newUser();
      await stack.signIn(user);
      const answer = await httpRequest(stack.app.riscPort as number, { body: tokensRevoked(stack, user.sub) });
      expect(answer.status).to.equal(503);
      expect(answer.headers['retry-after']).to.be.a('string');
      expect(((await stack.rawDocument(user.sub)) as Record<string, unknown>).status).to.equal('ACTIVE');
    } finally {
      await stack.close();
    }
  });

  it('answers 503 while Firestore is down, and processes a delivery of the same jti once it is back', async () => {
    const emulator = await FirestoreEmulator.start({ projectId: 'tokenbroker-risc-outage' });
    const stack = await TestStack.start({ emulator, env: { TOKENBROKER_RISC_PORT: '0', TOKENBROKER_STORE_TIMEOUT_MS: '500' } });
    let restarted: FirestoreEmulator | undefined;
    try {
      // A fresh emulator's first requests pay for JVM warm-up, beyond the 500 ms deadline.
      await stack.db.collection('warm-up').doc('x').set({ at: 1 });
      const user = stack.newUser();
      await stack.signIn(user);
      const token = tokensRevoked(stack, user.sub);
      await emulator.stop();
      const answer = await httpRequest(stack.app.riscPort as number, { body: token });
      expect(answer.status).to.equal(503);
      expect(answer.body).to.not.include(token);
      expect(stack.logs.some((l) => l.includes('"event":"security_event_deferred"'))).to.equal(true);

      // Back (empty: the emulator keeps data in memory). The user signs in
      // again, and Google's retry of the same token is processed, not taken for a replay.
      restarted = await FirestoreEmulator.start({ projectId: 'tokenbroker-risc-outage', port: Number(emulator.host.split(':')[1]) });
      let signedIn;
      for (let attempt = 0; !signedIn && attempt < 20; attempt += 1) {
        signedIn = await stack.signIn(user, { consent: true }).catch(() => undefined);
      }
      expect(signedIn?.userId).to.equal(user.sub);
      // Google's retry comes later than the sign-in (whole seconds): issue it a second on.
      const retry = stack.google.signSecurityEvent({
        aud: SERVER_CLIENT_ID,
        iat: Math.floor(Date.now() / 1000) + 1,
        jti: JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString('utf8')).jti as string,
        events: { [SECURITY_EVENT_TYPES['tokens-revoked']]: { subject: { subject_type: 'iss-sub', iss: stack.google.riscIssuer, sub: user.sub } } },
      });
      issuedSecrets.add(retry);
      expect((await httpRequest(stack.app.riscPort as number, { body: retry })).status).to.equal(202);
      expect(((await stack.rawDocument(user.sub)) as Record<string, unknown>).dead_reason).to.equal('risc_tokens_revoked');
    } finally {
      await stack.close();
      await restarted?.stop();
    }
  });
});
