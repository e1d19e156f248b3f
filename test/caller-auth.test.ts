import { Metadata, status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { createHmac } from 'node:crypto';
import { errorInfoOf, isServiceError } from '../src/client/error-info';
import { checkHealth } from '../src/client/health-client';
import { TokenBrokerClient } from '../src/client/token-broker-client';
import { issuedSecrets } from './support/log-capture';
import { CALLER_AUDIENCE, expectGrpcError, useStack } from './support/stack';

const GATEWAY = 'gateway@tb-test.iam.gserviceaccount.com';
const PHOTOS = 'photos@tb-test.iam.gserviceaccount.com';
const STRANGER = 'stranger@other-project.iam.gserviceaccount.com';
const DRIVE = 'https://www.googleapis.com/auth/drive.readonly';
const GMAIL = 'https://www.googleapis.com/auth/gmail.readonly';

const POLICY = `
callers:
  ${GATEWAY}:
    rpcs: [ExchangeCode, GetProfile]
  ${PHOTOS}:
    rpcs: [GetAccessToken]
    scopes: [${DRIVE}]
`;

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

describe('caller authentication and policy (Google ID tokens)', () => {
  const stack = useStack({ policy: POLICY });
  const address = () => `127.0.0.1:${stack.app.port}`;

  /** Calls every RPC with `authorization` set to `header` (none when undefined). */
  function callsWith(header: string | undefined) {
    const client = new TokenBrokerClient(address());
    const metadata = () => {
      const md = new Metadata();
      if (header !== undefined) md.set('authorization', header);
      return { metadata: md };
    };
    return {
      calls: [
        client.exchangeCode({ authCode: '4/0some-code' }, metadata()),
        client.getAccessToken({ userId: '123', scopes: [DRIVE] }, metadata()),
        client.getProfile({ userId: '123' }, metadata()),
      ],
      close: () => client.close(),
    };
  }

  async function expectUnauthenticated(header: string | undefined) {
    const { calls, close } = callsWith(header);
    try {
      for (const call of calls) await expectGrpcError(call, status.UNAUTHENTICATED, 'UNAUTHENTICATED');
    } finally {
      close();
    }
  }

  /** Signs `user` in through the gateway, the caller allowed to exchange codes. */
  async function signIn(user: ReturnType<typeof stack.newUser>, scopes: string[]) {
    const gateway = stack.clientAs(GATEWAY);
    try {
      return await gateway.exchangeCode({ authCode: stack.mintCode(user, { scopes }) });
    } finally {
      gateway.close();
    }
  }

  /** A token Google's local stand-in signs, with `claims` replacing the valid ones. */
  function token(claims: Record<string, unknown>): string {
    return stack.callerToken(PHOTOS, claims);
  }

  it('refuses a call with no credential', async () => {
    await expectUnauthenticated(undefined);
  });

  it('refuses malformed bearer credentials: wrong scheme, not a JWT, two segments', async () => {
    const valid = token({});
    const [header, payload] = valid.split('.') as [string, string];
    for (const bad of ['Bearer', 'Bearer ', `Basic ${valid}`, 'Bearer not-a-jwt', `Bearer ${header}.${payload}`, `Bearer ${valid} extra`]) {
      await expectUnauthenticated(bad);
    }
  });

  it('refuses ID tokens with the wrong audience, issuer, expiry or issue time', async () => {
    const now = Math.floor(Date.now() / 1000);
    await expectUnauthenticated(`Bearer ${token({ aud: 'https://someone-else.test' })}`);
    await expectUnauthenticated(`Bearer ${token({ iss: 'https://evil.example.com' })}`);
    await expectUnauthenticated(`Bearer ${token({ iat: now - 7200, exp: now - 3600 })}`);
    await expectUnauthenticated(`Bearer ${token({ iat: now + 3600, exp: now + 7200 })}`);
  });

  it('refuses a token without a verified email', async () => {
    await expectUnauthenticated(`Bearer ${token({ email_verified: false })}`);
    await expectUnauthenticated(`Bearer ${token({ email: undefined })}`);
  });

  it('refuses forged signatures: tampered, unknown key, alg none, HS256 keyed with the public key', async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: stack.google.issuer, aud: CALLER_AUDIENCE, sub: '1', email: PHOTOS, email_verified: true, iat: now, exp: now + 3600 };
    await expectUnauthenticated(`Bearer ${stack.google.signIdToken(claims, 'tampered')}`);
    await expectUnauthenticated(`Bearer ${stack.google.signIdToken(claims, 'unknown-kid')}`);
    const certs = (await (await fetch(stack.google.endpoints.pemCertsUrl)).json()) as Record<string, string>;
    const [kid, pem] = Object.entries(certs)[0] as [string, string];
    const unsigned = `${b64url({ alg: 'none', kid, typ: 'JWT' })}.${b64url(claims)}`;
    const hsInput = `${b64url({ alg: 'HS256', kid, typ: 'JWT' })}.${b64url(claims)}`;
    const hs256 = `${hsInput}.${createHmac('sha256', pem).update(hsInput).digest('base64url')}`;
    issuedSecrets.add(unsigned);
    issuedSecrets.add(hs256);
    await expectUnauthenticated(`Bearer ${unsigned}.`);
    await expectUnauthenticated(`Bearer ${hs256}`);
  });

  it('refuses a verified caller the policy does not name', async () => {
    const client = stack.clientAs(STRANGER);
    try {
      const { info } = await expectGrpcError(client.getProfile({ userId: '123' }), status.PERMISSION_DENIED, 'PERMISSION_DENIED');
      expect(info?.metadata).to.include({ caller: STRANGER, rpc: 'GetProfile' });
    } finally {
      client.close();
    }
  });

  it('refuses an allowed caller an RPC its policy does not list', async () => {
    const gateway = stack.clientAs(GATEWAY);
    const photos = stack.clientAs(PHOTOS);
    try {
      await expectGrpcError(gateway.getAccessToken({ userId: '123', scopes: [DRIVE] }), status.PERMISSION_DENIED, 'PERMISSION_DENIED');
      await expectGrpcError(photos.exchangeCode({ authCode: '4/0x' }), status.PERMISSION_DENIED, 'PERMISSION_DENIED');
      await expectGrpcError(photos.getProfile({ userId: '123' }), status.PERMISSION_DENIED, 'PERMISSION_DENIED');
    } finally {
      gateway.close();
      photos.close();
    }
  });

  it('refuses a scope outside the policy alike for a stored and an unknown user, before any lookup', async () => {
    const user = stack.newUser();
    await signIn(user, ['openid', 'email', DRIVE, GMAIL]);
    const photos = stack.clientAs(PHOTOS);
    try {
      stack.google.resetStats();
      const answers = [];
      for (const userId of [user.sub, '999999999999999999999']) {
        const err = await photos.getAccessToken({ userId, scopes: [DRIVE, GMAIL] }).then(
          () => undefined,
          (e: unknown) => e,
        );
        if (!isServiceError(err)) throw new Error(`expected a gRPC error, got ${String(err)}`);
        answers.push({ code: err.code, details: err.details, info: errorInfoOf(err) });
      }
      expect(answers[0]).to.deep.equal(answers[1]);
      expect(answers[0]?.code).to.equal(status.PERMISSION_DENIED);
      expect(answers[0]?.info?.metadata).to.include({ forbiddenScopes: GMAIL });
      expect(stack.google.stats().refreshToken).to.equal(0);
    } finally {
      photos.close();
    }
  });

  it('serves allowed callers; an empty scope request gets only the caller\'s allowance', async () => {
    const user = stack.newUser();
    const gateway = stack.clientAs(GATEWAY);
    const photos = stack.clientAs(PHOTOS);
    try {
      const exchanged = await gateway.exchangeCode({ authCode: stack.mintCode(user, { scopes: ['openid', 'email', DRIVE, GMAIL] }) });
      expect(exchanged.grantedScopes).to.include(GMAIL);
      expect((await gateway.getProfile({ userId: user.sub })).profile?.email).to.equal(user.email);
      const narrowed = await photos.getAccessToken({ userId: user.sub });
      expect(narrowed.scopes).to.deep.equal([DRIVE]);
      const explicit = await photos.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
      expect(explicit.accessToken).to.equal(narrowed.accessToken);
      const audit = stack.logs
        .filter((line) => line.includes('"event":"token_issued"') && line.includes(user.sub))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(audit).to.have.length(2);
      expect(audit[0]).to.include({ caller: PHOTOS, userId: user.sub });
      expect(audit[0]?.scopes).to.deep.equal([DRIVE]);
      expect(JSON.stringify(audit)).to.not.include(narrowed.accessToken);
    } finally {
      gateway.close();
      photos.close();
    }
  });

  it('verifies a caller token once and then answers from memory', async () => {
    const user = stack.newUser();
    await signIn(user, ['openid', DRIVE]);
    const photos = stack.clientAs(PHOTOS);
    try {
      await photos.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
      // Past the certs' max-age: verifying again would fetch them again.
      stack.clock.advance(10 * 60_000);
      stack.google.resetStats();
      for (let i = 0; i < 5; i += 1) await photos.getAccessToken({ userId: user.sub, scopes: [DRIVE] });
      expect(stack.google.stats().certs).to.equal(0);
    } finally {
      photos.close();
    }
  });

  it('leaves health checks open, for probes', async () => {
    expect(await checkHealth(address())).to.equal('SERVING');
  });
});
