import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { riscTokenHash } from '../src/domain/grant';
import { expectGrpcError, SIGN_IN_SCOPES, useStack } from './support/stack';

describe('ExchangeCode', () => {
  const stack = useStack();

  it('creates the user, returns the profile and stores the grant', async () => {
    const user = stack.newUser({ hostedDomain: 'example.com' });
    const res = await stack.signIn(user);
    expect(res.userId).to.equal(user.sub);
    expect(res.created).to.equal(true);
    expect(res.grantedScopes).to.deep.equal([...SIGN_IN_SCOPES].sort());
    expect(res.profile).to.deep.equal({
      userId: user.sub,
      email: user.email,
      emailVerified: true,
      name: 'Test User',
      pictureUrl: user.picture,
      locale: 'en',
      givenName: 'Test',
      familyName: 'User',
      hostedDomain: 'example.com',
    });
    const doc = await stack.rawDocument(user.sub);
    expect(doc).to.include({ user_id: user.sub, status: 'ACTIVE' });
    expect(doc?.scopes).to.deep.equal([...SIGN_IN_SCOPES].sort());
  });

  it('stores the Cross-Account Protection hash of the refresh token (SHA-512 of SHA-512, base64)', async () => {
    // Independent vector: printf '1//0gTokenExample' | openssl dgst -sha512 -binary | openssl dgst -sha512 -binary | base64
    expect(riscTokenHash('1//0gTokenExample')).to.equal('faZov+Kx8cajdx9VWySGbY5aUKSuqYxk2lWIVkLrBCNWAJzQ8tzV66vGQ7DL/HKbZVkKr/uAC3cKhqgkw0l6ug==');
    const user = stack.newUser();
    await stack.signIn(user);
    const hash = (await stack.rawDocument(user.sub))?.refresh_token_hash;
    const issued = stack.google.issuedSecrets().filter((s) => s.startsWith('1//'));
    expect(issued.map(riscTokenHash)).to.include(hash);
  });

  it('stores the refresh token only sealed: no clear token anywhere in the document', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    const raw = await stack.rawDocument(user.sub);
    const sealed = raw?.refresh_token as { key_id: string; iv: Buffer; ciphertext: Buffer };
    expect(sealed.key_id).to.equal('k1');
    expect(sealed.iv).to.have.length(12);
    const refreshTokens = stack.google.issuedSecrets().filter((s) => s.startsWith('1//'));
    expect(refreshTokens.length).to.be.greaterThan(0);
    const dump = JSON.stringify(raw, (_k, v: unknown) =>
      v && typeof v === 'object' && (v as { type?: unknown }).type === 'Buffer' ? Buffer.from((v as { data: number[] }).data).toString('latin1') : v,
    );
    for (const token of refreshTokens) {
      expect(dump).to.not.include(token);
      expect(dump).to.not.include(token.slice(3));
    }
  });

  it('keeps the stored refresh token when a later sign-in brings none', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    const before = await stack.rawDocument(user.sub);
    const again = await stack.signIn(user, { consent: false });
    expect(again.created).to.equal(false);
    const after = await stack.rawDocument(user.sub);
    expect(after?.refresh_token).to.deep.equal(before?.refresh_token);
    // The kept grant still refreshes.
    stack.clock.advance(2 * 3600_000);
    const token = await stack.client.getAccessToken({ userId: user.sub });
    expect(token.accessToken).to.match(/^ya29\./);
  });

  it('replaces the refresh token when a consented sign-in brings a new one', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    const before = await stack.rawDocument(user.sub);
    const again = await stack.signIn(user, { consent: true });
    expect(again.created).to.equal(false);
    const after = await stack.rawDocument(user.sub);
    expect(after?.refresh_token).to.not.deep.equal(before?.refresh_token);
  });

  it('incremental authorization: a later consent for more scopes widens the stored grant, newest refresh token winning', async () => {
    const drive = 'https://www.googleapis.com/auth/drive.readonly';
    const user = stack.newUser();
    await stack.signIn(user, { scopes: ['openid', 'email'] });
    const { info } = await expectGrpcError(stack.client.getAccessToken({ userId: user.sub, scopes: [drive] }), status.FAILED_PRECONDITION, 'SCOPE_NOT_GRANTED');
    expect(info?.metadata).to.include({ missingScopes: drive });
    const before = await stack.rawDocument(user.sub);
    // Google returns every scope granted so far when the app asks with include_granted_scopes.
    const widened = await stack.signIn(user, { scopes: ['openid', 'email', drive], consent: true });
    expect(widened.grantedScopes).to.deep.equal(['email', drive, 'openid'].sort());
    expect((await stack.rawDocument(user.sub))?.refresh_token).to.not.deep.equal(before?.refresh_token);
    const token = await stack.client.getAccessToken({ userId: user.sub, scopes: [drive] });
    expect(token.scopes).to.deep.equal([drive]);
  });

  it('answers CONSENT_REQUIRED when Google grants no refresh token and none is stored', async () => {
    const user = stack.newUser();
    // The user consented before, but the stored grant is gone (deleted by an operator).
    await stack.signIn(user);
    await stack.db.collection(stack.collection).doc(user.sub).delete();
    await expectGrpcError(stack.signIn(user, { consent: false }), status.FAILED_PRECONDITION, 'CONSENT_REQUIRED');
    expect(await stack.rawDocument(user.sub)).to.equal(undefined);
  });
});
