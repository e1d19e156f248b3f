// google-auth-library must never look for the GCE metadata server from a test.
process.env.METADATA_SERVER_DETECTION = 'none';

import { createPublicKey, createVerify, type JsonWebKey } from 'node:crypto';
import { inspect } from 'node:util';
import { expect } from 'chai';
import { ClientAuthentication, OAuth2Client } from 'google-auth-library';
import { LocalOAuthServer, type LocalOAuthServerOptions, type TestUser } from '../src/local/oauth-server';

const SERVER_CLIENT_ID = 'server-client.apps.googleusercontent.com';
const SERVER_CLIENT_SECRET = 'server-secret';
const IOS_CLIENT_ID = 'ios-client.apps.googleusercontent.com';
const SCOPES = ['openid', 'email', 'profile', 'https://www.googleapis.com/auth/calendar.readonly'];
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

let userCounter = 0;
/** A user no other test has touched, so tests can share one server. */
function newUser(overrides: Partial<TestUser> = {}): TestUser {
  userCounter += 1;
  return {
    sub: `1000000000000000${userCounter}`,
    email: `user${userCounter}@example.com`,
    name: `User ${userCounter}`,
    givenName: 'User',
    familyName: String(userCounter),
    picture: `https://example.com/${userCounter}.png`,
    locale: 'en',
    ...overrides,
  };
}

/**
 * The real OAuth2Client with its protected refreshToken() opened up: it is the one
 * call that returns exactly what the token endpoint answered on refresh.
 */
class TestOAuth2Client extends OAuth2Client {
  refresh(refreshToken: string): ReturnType<OAuth2Client['refreshToken']> {
    return this.refreshToken(refreshToken);
  }
}

function clientFor(server: LocalOAuthServer, overrides: { clientSecret?: string; basic?: boolean } = {}): TestOAuth2Client {
  return new TestOAuth2Client({
    clientId: SERVER_CLIENT_ID,
    clientSecret: overrides.clientSecret ?? SERVER_CLIENT_SECRET,
    clientAuthentication: overrides.basic === true ? ClientAuthentication.ClientSecretBasic : undefined,
    endpoints: {
      oauth2TokenUrl: server.endpoints.tokenUrl,
      oauth2RevokeUrl: server.endpoints.revokeUrl,
      oauth2FederatedSignonPemCertsUrl: server.endpoints.pemCertsUrl,
      oauth2FederatedSignonJwkCertsUrl: server.endpoints.jwksUrl,
      tokenInfoUrl: server.endpoints.tokenInfoUrl,
    },
    issuers: [server.issuer],
  });
}

interface HttpErrorShape {
  message: string;
  response: { status: number; data: unknown; headers: Headers };
}

function isHttpError(err: unknown): err is HttpErrorShape {
  if (!(err instanceof Error) || !('response' in err)) {
    return false;
  }
  const response: unknown = err.response;
  return typeof response === 'object' && response !== null && 'status' in response && 'data' in response;
}

/** Awaits `promise`, expecting it to fail with an HTTP error as google-auth-library raises them. */
async function httpFailure(promise: Promise<unknown>): Promise<HttpErrorShape> {
  try {
    await promise;
  } catch (err: unknown) {
    if (isHttpError(err)) {
      return err;
    }
    throw err;
  }
  throw new Error('expected the call to fail');
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err: unknown) {
    if (err instanceof Error) {
      return err;
    }
    throw err;
  }
  throw new Error('expected the call to fail');
}

async function postForm(url: string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<{
  status: number;
  body: Record<string, unknown>;
}> {
  const res = await fetch(url, { method: 'POST', headers: { ...FORM, ...headers }, body: new URLSearchParams(fields) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function tokenForm(fields: Record<string, string>): Record<string, string> {
  return { client_id: SERVER_CLIENT_ID, client_secret: SERVER_CLIENT_SECRET, ...fields };
}

function decodeJwtPart(jwt: string, index: 0 | 1): Record<string, unknown> {
  const part = jwt.split('.')[index] ?? '';
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

describe('LocalOAuthServer', () => {
  const opened: LocalOAuthServer[] = [];
  async function start(options: Partial<LocalOAuthServerOptions> = {}): Promise<LocalOAuthServer> {
    const server = await LocalOAuthServer.start({
      clientId: SERVER_CLIENT_ID,
      clientSecret: SERVER_CLIENT_SECRET,
      appClientIds: [IOS_CLIENT_ID],
      ...options,
    });
    opened.push(server);
    return server;
  }

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((server) => server.close()));
  });

  describe('authorization code exchange', () => {
    it('listens on 127.0.0.1 and names Google-like endpoints', async () => {
      const server = await start();
      expect(server.url).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(server.endpoints.tokenUrl).to.equal(`${server.url}/token`);
      expect(server.endpoints.pemCertsUrl).to.equal(`${server.url}/oauth2/v1/certs`);
      expect(server.endpoints.jwksUrl).to.equal(`${server.url}/oauth2/v3/certs`);
      expect(server.issuer).to.equal('https://accounts.google.com');
    });

    it('exchanges a code through getToken with an empty redirect_uri', async () => {
      const server = await start();
      const user = newUser({ hostedDomain: 'example.com' });
      const code = server.mintCode(user, { scopes: SCOPES });
      expect(code.startsWith('4/0')).to.equal(true);

      const { tokens } = await clientFor(server).getToken({ code, redirect_uri: '' });

      expect(tokens.access_token).to.match(/^ya29\.[A-Za-z0-9_-]{40,}$/);
      expect(tokens.refresh_token).to.match(/^1\/\/[A-Za-z0-9_-]{40,}$/);
      expect(tokens.scope).to.equal(SCOPES.join(' '));
      expect(tokens.token_type).to.equal('Bearer');
      expect(tokens.expiry_date).to.be.closeTo(Date.now() + 3600_000, 5000);
      const idToken = tokens.id_token ?? '';
      const header = decodeJwtPart(idToken, 0);
      expect(header['alg']).to.equal('RS256');
      expect(header['kid']).to.be.a('string');
      const claims = decodeJwtPart(idToken, 1);
      expect(claims).to.include({
        iss: 'https://accounts.google.com',
        aud: SERVER_CLIENT_ID,
        azp: IOS_CLIENT_ID,
        sub: user.sub,
        email: user.email,
        email_verified: true,
        name: user.name,
        given_name: user.givenName,
        family_name: user.familyName,
        picture: user.picture,
        locale: 'en',
        hd: 'example.com',
      });
      expect(Number(claims['exp']) - Number(claims['iat'])).to.equal(3600);
    });

    it('leaves hd and absent profile claims out, and honours emailVerified and appClientId', async () => {
      const server = await start();
      const user: TestUser = { sub: 'bare-user', email: 'bare@example.com', emailVerified: false };
      const code = server.mintCode(user, { scopes: ['openid'], appClientId: 'android.apps.googleusercontent.com' });
      const { tokens } = await clientFor(server).getToken({ code, redirect_uri: '' });
      const claims = decodeJwtPart(tokens.id_token ?? '', 1);
      expect(claims).to.have.keys(['iss', 'aud', 'azp', 'sub', 'email', 'email_verified', 'iat', 'exp']);
      expect(claims['email_verified']).to.equal(false);
      expect(claims['azp']).to.equal('android.apps.googleusercontent.com');
    });

    it('accepts HTTP Basic client authentication', async () => {
      const server = await start();
      const code = server.mintCode(newUser(), { scopes: SCOPES });
      const { tokens } = await clientFor(server, { basic: true }).getToken({ code, redirect_uri: '' });
      expect(tokens.access_token).to.match(/^ya29\./);
    });

    it('rejects a reused code with invalid_grant', async () => {
      const server = await start();
      const client = clientFor(server);
      const code = server.mintCode(newUser(), { scopes: SCOPES });
      await client.getToken({ code, redirect_uri: '' });

      const err = await httpFailure(client.getToken({ code, redirect_uri: '' }));

      expect(err.message).to.equal('invalid_grant');
      expect(err.response.status).to.equal(400);
      expect(err.response.data).to.deep.equal({ error: 'invalid_grant', error_description: 'Bad Request' });
    });

    it('rejects an unknown code with invalid_grant', async () => {
      const server = await start();
      const err = await httpFailure(clientFor(server).getToken({ code: '4/0unknown', redirect_uri: '' }));
      expect(err.response.status).to.equal(400);
      expect(err.response.data).to.deep.include({ error: 'invalid_grant' });
    });

    it('expires codes by the injected clock', async () => {
      let clock = Date.now();
      const server = await start({ now: () => clock, codeTtlSeconds: 600 });
      const client = clientFor(server);
      const fresh = server.mintCode(newUser(), { scopes: SCOPES });
      const stale = server.mintCode(newUser(), { scopes: SCOPES });
      const shortLived = server.mintCode(newUser(), { scopes: SCOPES, ttlSeconds: 30 });

      clock += 599_000;
      await client.getToken({ code: fresh, redirect_uri: '' });
      const err = await httpFailure(client.getToken({ code: shortLived, redirect_uri: '' }));
      expect(err.response.data).to.deep.include({ error: 'invalid_grant' });
      clock += 1_000;
      const late = await httpFailure(client.getToken({ code: stale, redirect_uri: '' }));
      expect(late.response.data).to.deep.include({ error: 'invalid_grant' });
    });

    it('requires the redirect_uri the code was minted with, treating absent and empty alike', async () => {
      const server = await start();
      const client = clientFor(server);
      const redirectUri = 'com.example.app:/oauth2redirect';
      const withUri = server.mintCode(newUser(), { scopes: SCOPES, redirectUri });
      const mismatch = await httpFailure(client.getToken({ code: withUri, redirect_uri: '' }));
      expect(mismatch.response.data).to.deep.include({ error: 'invalid_grant' });

      const again = server.mintCode(newUser(), { scopes: SCOPES, redirectUri });
      expect((await client.getToken({ code: again, redirect_uri: redirectUri })).tokens.access_token).to.be.a('string');

      const noUri = server.mintCode(newUser(), { scopes: SCOPES });
      const explicitEmpty = await postForm(
        server.endpoints.tokenUrl,
        tokenForm({ grant_type: 'authorization_code', code: noUri, redirect_uri: '' }),
      );
      expect(explicitEmpty.status).to.equal(200);
    });

    it('rejects a wrong or missing client secret with invalid_client', async () => {
      const server = await start();
      const code = server.mintCode(newUser(), { scopes: SCOPES });
      const err = await httpFailure(clientFor(server, { clientSecret: 'wrong' }).getToken({ code, redirect_uri: '' }));
      expect(err.message).to.equal('invalid_client');
      expect(err.response.status).to.equal(401);
      expect(err.response.data).to.deep.equal({ error: 'invalid_client', error_description: 'Unauthorized' });

      const missing = await postForm(server.endpoints.tokenUrl, { grant_type: 'authorization_code', code });
      expect(missing.status).to.equal(401);
      const basicMismatch = await postForm(
        server.endpoints.tokenUrl,
        { grant_type: 'authorization_code', code, client_id: 'someone-else' },
        { authorization: `Basic ${Buffer.from(`${SERVER_CLIENT_ID}:${SERVER_CLIENT_SECRET}`).toString('base64')}` },
      );
      expect(basicMismatch.status).to.equal(401);
      // A failed client check must not burn the code.
      expect((await clientFor(server).getToken({ code, redirect_uri: '' })).tokens.access_token).to.be.a('string');
    });

    it('answers malformed token requests with invalid_request or unsupported_grant_type', async () => {
      const server = await start();
      const noCode = await postForm(server.endpoints.tokenUrl, tokenForm({ grant_type: 'authorization_code' }));
      expect(noCode.status).to.equal(400);
      expect(noCode.body['error']).to.equal('invalid_request');
      const noGrantType = await postForm(server.endpoints.tokenUrl, tokenForm({}));
      expect(noGrantType.body['error']).to.equal('invalid_request');
      const noRefreshToken = await postForm(server.endpoints.tokenUrl, tokenForm({ grant_type: 'refresh_token' }));
      expect(noRefreshToken.body['error']).to.equal('invalid_request');
      const other = await postForm(server.endpoints.tokenUrl, tokenForm({ grant_type: 'client_credentials' }));
      expect(other.status).to.equal(400);
      expect(other.body['error']).to.equal('unsupported_grant_type');
      const json = await fetch(server.endpoints.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(tokenForm({ grant_type: 'refresh_token', refresh_token: 'x' })),
      });
      expect(json.status).to.equal(400);
      expect(((await json.json()) as Record<string, unknown>)['error']).to.equal('invalid_request');
    });

    it('issues a refresh token only on first consent or with consent: true', async () => {
      const server = await start();
      const client = clientFor(server);
      const user = newUser();
      const first = await client.getToken({ code: server.mintCode(user, { scopes: SCOPES }), redirect_uri: '' });
      const second = await client.getToken({ code: server.mintCode(user, { scopes: SCOPES }), redirect_uri: '' });
      const consented = await client.getToken({
        code: server.mintCode(user, { scopes: SCOPES, consent: true }),
        redirect_uri: '',
      });

      expect(first.tokens.refresh_token).to.be.a('string');
      expect(second.tokens).to.not.have.property('refresh_token');
      expect(second.tokens.id_token).to.be.a('string');
      expect(consented.tokens.refresh_token).to.be.a('string').and.not.equal(first.tokens.refresh_token);
      // Google lets several refresh tokens of one user live side by side.
      for (const refreshToken of [first.tokens.refresh_token ?? '', consented.tokens.refresh_token ?? '']) {
        const { tokens } = await client.refresh(refreshToken);
        expect(tokens.access_token).to.match(/^ya29\./);
      }
    });
  });

  describe('refresh', () => {
    it('refreshes through setCredentials + getAccessToken and refreshAccessToken', async () => {
      const server = await start();
      const user = newUser();
      const { tokens } = await clientFor(server).getToken({ code: server.mintCode(user, { scopes: SCOPES }), redirect_uri: '' });

      const client = clientFor(server);
      client.setCredentials({ refresh_token: tokens.refresh_token });
      const { token } = await client.getAccessToken();
      expect(token).to.match(/^ya29\./).and.not.equal(tokens.access_token);

      const { credentials } = await client.refreshAccessToken();
      expect(credentials.access_token).to.match(/^ya29\./).and.not.equal(token);
      expect(credentials.refresh_token).to.equal(tokens.refresh_token);
      expect(credentials.scope).to.equal(SCOPES.join(' '));
      const idToken = credentials.id_token ?? '';
      expect(decodeJwtPart(idToken, 1)).to.include({ sub: user.sub, aud: SERVER_CLIENT_ID, azp: IOS_CLIENT_ID });
      const ticket = await client.verifyIdToken({ idToken, audience: SERVER_CLIENT_ID });
      expect(ticket.getPayload()?.sub).to.equal(user.sub);
      expect(server.stats().refreshToken).to.equal(2);
    });

    it('carries the profile of the latest sign-in in ID tokens of older grants', async () => {
      const server = await start();
      const client = clientFor(server);
      const user = newUser({ name: 'Old Name' });
      const { tokens } = await client.getToken({ code: server.mintCode(user, { scopes: SCOPES }), redirect_uri: '' });
      server.mintCode({ ...user, name: 'New Name' }, { scopes: SCOPES });
      const refreshed = await client.refresh(tokens.refresh_token ?? '');
      expect(decodeJwtPart(refreshed.tokens.id_token ?? '', 1)['name']).to.equal('New Name');
    });

    it('returns no id_token on refresh when the grant lacks openid', async () => {
      const server = await start();
      const client = clientFor(server);
      const code = server.mintCode(newUser(), { scopes: ['https://www.googleapis.com/auth/drive.file'] });
      const { tokens } = await client.getToken({ code, redirect_uri: '' });
      const refreshed = await client.refresh(tokens.refresh_token ?? '');
      expect(refreshed.tokens).to.not.have.property('id_token');
      expect(refreshed.tokens.scope).to.equal('https://www.googleapis.com/auth/drive.file');
    });

    it('narrows scopes on request and refuses scopes outside the grant with invalid_scope', async () => {
      const server = await start();
      const code = server.mintCode(newUser(), { scopes: SCOPES });
      const { tokens } = await clientFor(server).getToken({ code, redirect_uri: '' });
      const refreshToken = tokens.refresh_token ?? '';

      const narrowed = await postForm(
        server.endpoints.tokenUrl,
        tokenForm({ grant_type: 'refresh_token', refresh_token: refreshToken, scope: 'email  openid' }),
      );
      expect(narrowed.status).to.equal(200);
      expect(narrowed.body['scope']).to.equal('email openid');
      const info = await clientFor(server).getTokenInfo(String(narrowed.body['access_token']));
      expect(info.scopes).to.deep.equal(['email', 'openid']);

      const widened = await postForm(
        server.endpoints.tokenUrl,
        tokenForm({ grant_type: 'refresh_token', refresh_token: refreshToken, scope: 'openid https://mail.google.com/' }),
      );
      expect(widened.status).to.equal(400);
      expect(widened.body['error']).to.equal('invalid_scope');
      expect(String(widened.body['error_description'])).to.contain('https://mail.google.com/');
    });

    it('rejects an unknown refresh token with invalid_grant', async () => {
      const server = await start();
      const err = await httpFailure(clientFor(server).refresh('1//not-a-token'));
      expect(err.message).to.equal('invalid_grant');
      expect(err.response.data).to.deep.equal({
        error: 'invalid_grant',
        error_description: 'Token has been expired or revoked.',
      });
    });

    it('rotates the refresh token once when armed, killing the old one', async () => {
      const server = await start();
      const user = newUser();
      const client = clientFor(server);
      const { tokens } = await client.getToken({ code: server.mintCode(user, { scopes: SCOPES }), redirect_uri: '' });
      const oldToken = tokens.refresh_token ?? '';

      server.rotateRefreshTokenOnNextRefresh(user.sub);
      const rotated = await client.refresh(oldToken);
      const newToken = rotated.tokens.refresh_token ?? '';
      expect(newToken).to.match(/^1\/\//).and.not.equal(oldToken);

      const dead = await httpFailure(client.refresh(oldToken));
      expect(dead.response.data).to.deep.include({ error: 'invalid_grant' });
      const next = await client.refresh(newToken);
      expect(next.tokens).to.not.have.property('refresh_token');
      expect(server.issuedSecrets()).to.include(newToken);
    });

    it('shows that refreshAccessToken keeps the old refresh token when the server rotates it', async () => {
      const server = await start();
      const user = newUser();
      const client = clientFor(server);
      const { tokens } = await client.getToken({ code: server.mintCode(user, { scopes: SCOPES }), redirect_uri: '' });
      client.setCredentials({ refresh_token: tokens.refresh_token });
      let announced: string | null | undefined;
      client.on('tokens', (emitted) => {
        announced = emitted.refresh_token;
      });

      server.rotateRefreshTokenOnNextRefresh(user.sub);
      const { credentials } = await client.refreshAccessToken();

      // The library overwrites the new token with the old, now dead one; only the
      // 'tokens' event (or the protected refreshToken()) reveals the replacement.
      expect(credentials.refresh_token).to.equal(tokens.refresh_token);
      expect(announced).to.be.a('string').and.not.equal(tokens.refresh_token);
    });
  });

  describe('revocation', () => {
    it('revokes a grant through OAuth2Client.revokeToken, which puts the token in the query', async () => {
      const server = await start();
      const client = clientFor(server);
      const { tokens } = await client.getToken({ code: server.mintCode(newUser(), { scopes: SCOPES }), redirect_uri: '' });

      const res = await client.revokeToken(tokens.refresh_token ?? '');
      expect(res.status).to.equal(200);
      expect(res.data).to.deep.equal({});
      expect(server.stats()).to.include({ revoke: 1, revokeTokenInQuery: 1 });

      const err = await httpFailure(client.refresh(tokens.refresh_token ?? ''));
      expect(err.response.data).to.deep.include({ error: 'invalid_grant' });
      const info = await httpFailure(client.getTokenInfo(tokens.access_token ?? ''));
      expect(info.response.status).to.equal(400);
    });

    it('revokes the whole grant from an access token in a form body, and only that grant', async () => {
      const server = await start();
      const client = clientFor(server);
      const user = newUser();
      const first = await client.getToken({ code: server.mintCode(user, { scopes: SCOPES }), redirect_uri: '' });
      const second = await client.getToken({
        code: server.mintCode(user, { scopes: SCOPES, consent: true }),
        redirect_uri: '',
      });
      const refreshed = await client.refresh(first.tokens.refresh_token ?? '');

      const res = await postForm(server.endpoints.revokeUrl, { token: refreshed.tokens.access_token ?? '' });
      expect(res).to.deep.equal({ status: 200, body: {} });
      expect(server.stats()).to.include({ revoke: 1, revokeTokenInQuery: 0 });

      const err = await httpFailure(client.refresh(first.tokens.refresh_token ?? ''));
      expect(err.response.data).to.deep.include({ error: 'invalid_grant' });
      await httpFailure(client.getTokenInfo(first.tokens.access_token ?? ''));
      expect((await client.refresh(second.tokens.refresh_token ?? '')).tokens.access_token).to.be.a('string');

      const again = await postForm(server.endpoints.revokeUrl, { token: first.tokens.refresh_token ?? '' });
      expect(again).to.deep.equal({ status: 400, body: { error: 'invalid_token', error_description: 'Token expired or revoked' } });
      const missing = await postForm(server.endpoints.revokeUrl, {});
      expect(missing.body['error']).to.equal('invalid_request');
    });

    it('revokeUser kills every grant and brings the refresh token back on the next sign-in', async () => {
      const server = await start();
      const client = clientFor(server);
      const user = newUser();
      const first = await client.getToken({ code: server.mintCode(user, { scopes: SCOPES }), redirect_uri: '' });
      const second = await client.getToken({
        code: server.mintCode(user, { scopes: SCOPES, consent: true }),
        redirect_uri: '',
      });
      const pending = server.mintCode(user, { scopes: SCOPES });
      const bystander = await client.getToken({ code: server.mintCode(newUser(), { scopes: SCOPES }), redirect_uri: '' });

      server.revokeUser(user.sub);

      for (const refreshToken of [first.tokens.refresh_token, second.tokens.refresh_token]) {
        const err = await httpFailure(client.refresh(refreshToken ?? ''));
        expect(err.response.data).to.deep.include({ error: 'invalid_grant' });
      }
      const stale = await httpFailure(client.getToken({ code: pending, redirect_uri: '' }));
      expect(stale.response.data).to.deep.include({ error: 'invalid_grant' });
      expect((await client.refresh(bystander.tokens.refresh_token ?? '')).tokens.access_token).to.be.a('string');
      const after = await client.getToken({ code: server.mintCode(user, { scopes: SCOPES }), redirect_uri: '' });
      expect(after.tokens.refresh_token).to.be.a('string');
    });

    it('forgets consent once a revoke leaves the user no grant', async () => {
      const server = await start();
      const client = clientFor(server);
      const user = newUser();
      const { tokens } = await client.getToken({ code: server.mintCode(user, { scopes: SCOPES }), redirect_uri: '' });
      await client.revokeToken(tokens.refresh_token ?? '');
      const next = await client.getToken({ code: server.mintCode(user, { scopes: SCOPES }), redirect_uri: '' });
      expect(next.tokens.refresh_token).to.be.a('string');
    });
  });

  describe('ID tokens and certs', () => {
    async function idTokenWith(
      server: LocalOAuthServer,
      idToken: Parameters<LocalOAuthServer['mintCode']>[1]['idToken'],
    ): Promise<string> {
      const code = server.mintCode(newUser(), { scopes: SCOPES, idToken });
      const { tokens } = await clientFor(server).getToken({ code, redirect_uri: '' });
      return tokens.id_token ?? '';
    }

    it('verifies a valid ID token with verifyIdToken', async () => {
      const server = await start();
      const idToken = await idTokenWith(server, undefined);
      const ticket = await clientFor(server).verifyIdToken({ idToken, audience: SERVER_CLIENT_ID });
      expect(ticket.getPayload()).to.include({ azp: IOS_CLIENT_ID, iss: server.issuer });
    });

    it('rejects a tampered signature, and the error embeds the token', async () => {
      const server = await start();
      const idToken = await idTokenWith(server, { signature: 'tampered' });
      const err = await rejection(clientFor(server).verifyIdToken({ idToken, audience: SERVER_CLIENT_ID }));
      expect(err.message).to.match(/^Invalid token signature/);
      expect(err.message).to.contain(idToken);
    });

    it('rejects a token signed with an unpublished key', async () => {
      const server = await start();
      const idToken = await idTokenWith(server, { signature: 'unknown-kid' });
      const err = await rejection(clientFor(server).verifyIdToken({ idToken, audience: SERVER_CLIENT_ID }));
      expect(err.message).to.match(/^No pem found for envelope/);
    });

    it('rejects a wrong audience, a wrong issuer and an expired token', async () => {
      const server = await start();
      const client = clientFor(server);
      const wrongAud = await idTokenWith(server, { aud: IOS_CLIENT_ID });
      expect((await rejection(client.verifyIdToken({ idToken: wrongAud, audience: SERVER_CLIENT_ID }))).message).to.match(
        /^Wrong recipient/,
      );
      const wrongIss = await idTokenWith(server, { iss: 'https://evil.example.com' });
      expect((await rejection(client.verifyIdToken({ idToken: wrongIss, audience: SERVER_CLIENT_ID }))).message).to.match(
        /^Invalid issuer/,
      );
      const expired = await idTokenWith(server, { expiresInSeconds: -600 });
      const claims = decodeJwtPart(expired, 1);
      expect(Number(claims['iat'])).to.be.below(Number(claims['exp']));
      expect((await rejection(client.verifyIdToken({ idToken: expired, audience: SERVER_CLIENT_ID }))).message).to.match(
        /^Token used too late/,
      );
      // azp is not checked by the library at all: that check is the broker's.
      const wrongAzp = await idTokenWith(server, { azp: 'someone-else.apps.googleusercontent.com' });
      expect((await client.verifyIdToken({ idToken: wrongAzp, audience: SERVER_CLIENT_ID })).getPayload()?.azp).to.equal(
        'someone-else.apps.googleusercontent.com',
      );
    });

    it('signs arbitrary claims with signIdToken', async () => {
      const server = await start();
      const claims = {
        iss: server.issuer,
        aud: 'https://tokenbroker.example.com',
        sub: 'caller-sa',
        email: 'caller@project.iam.gserviceaccount.com',
        iat: nowSeconds(),
        exp: nowSeconds() + 300,
      };
      const client = clientFor(server);
      const ticket = await client.verifyIdToken({ idToken: server.signIdToken(claims), audience: claims.aud });
      expect(ticket.getPayload()).to.deep.equal(claims);
      await rejection(client.verifyIdToken({ idToken: server.signIdToken(claims, 'tampered'), audience: claims.aud }));
      await rejection(client.verifyIdToken({ idToken: server.signIdToken(claims, 'unknown-kid'), audience: claims.aud }));
    });

    it('keeps verification working across key rotation, publishing two keys', async () => {
      const server = await start({ certsMaxAgeSeconds: 0 });
      const client = clientFor(server);
      const before = await idTokenWith(server, undefined);
      await client.verifyIdToken({ idToken: before, audience: SERVER_CLIENT_ID });

      server.rotateSigningKeys();
      const after = await idTokenWith(server, undefined);
      expect(decodeJwtPart(after, 0)['kid']).to.not.equal(decodeJwtPart(before, 0)['kid']);
      await client.verifyIdToken({ idToken: before, audience: SERVER_CLIENT_ID });
      await client.verifyIdToken({ idToken: after, audience: SERVER_CLIENT_ID });
      const pem = (await (await fetch(server.endpoints.pemCertsUrl)).json()) as Record<string, string>;
      expect(Object.keys(pem)).to.have.members([decodeJwtPart(before, 0)['kid'], decodeJwtPart(after, 0)['kid']]);

      server.rotateSigningKeys();
      const gone = await rejection(client.verifyIdToken({ idToken: before, audience: SERVER_CLIENT_ID }));
      expect(gone.message).to.match(/^No pem found/);
      await client.verifyIdToken({ idToken: after, audience: SERVER_CLIENT_ID });
    });

    it('rotates to a key of the size asked for, whose tokens verify, and refuses sizes outside 1024-8192 bits', async () => {
      const server = await start({ certsMaxAgeSeconds: 0 });
      server.rotateSigningKeys(1024);
      const idToken = await idTokenWith(server, undefined);
      await clientFor(server).verifyIdToken({ idToken, audience: SERVER_CLIENT_ID });
      const pem = (await (await fetch(server.endpoints.pemCertsUrl)).json()) as Record<string, string>;
      const current = pem[decodeJwtPart(idToken, 0)['kid'] as string] as string;
      expect(createPublicKey(current).asymmetricKeyDetails?.modulusLength).to.equal(1024);
      server.rotateSigningKeys();
      const nextToken = await idTokenWith(server, undefined);
      const listed = (await (await fetch(server.endpoints.pemCertsUrl)).json()) as Record<string, string>;
      expect(createPublicKey(listed[decodeJwtPart(nextToken, 0)['kid'] as string] as string).asymmetricKeyDetails?.modulusLength, 'the default').to.equal(2048);
      for (const bits of [512, 1023.5, 16384]) expect(() => server.rotateSigningKeys(bits)).to.throw(/1024 to 8192 bits/);
    });

    it('is cached by the library for max-age, so a client misses a key minted after its fetch', async () => {
      const server = await start({ certsMaxAgeSeconds: 300 });
      const client = clientFor(server);
      await client.verifyIdToken({ idToken: await idTokenWith(server, undefined), audience: SERVER_CLIENT_ID });
      await client.verifyIdToken({ idToken: await idTokenWith(server, undefined), audience: SERVER_CLIENT_ID });
      expect(server.stats().certs).to.equal(1);

      server.rotateSigningKeys();
      const fresh = await idTokenWith(server, undefined);
      const err = await rejection(client.verifyIdToken({ idToken: fresh, audience: SERVER_CLIENT_ID }));
      expect(err.message).to.match(/^No pem found/);
      await clientFor(server).verifyIdToken({ idToken: fresh, audience: SERVER_CLIENT_ID });
    });

    it('serves PEM certs and a JWKS of the same keys with cache-control', async () => {
      const server = await start({ certsMaxAgeSeconds: 123 });
      server.rotateSigningKeys();
      const pemRes = await fetch(server.endpoints.pemCertsUrl);
      expect(pemRes.headers.get('cache-control')).to.equal('public, max-age=123');
      const pem = (await pemRes.json()) as Record<string, string>;
      const jwksRes = await fetch(server.endpoints.jwksUrl);
      expect(jwksRes.headers.get('cache-control')).to.equal('public, max-age=123');
      const jwks = (await jwksRes.json()) as { keys: (JsonWebKey & { kid: string; alg: string; use: string })[] };
      expect(jwks.keys.map((key) => key.kid)).to.have.members(Object.keys(pem));

      const idToken = server.signIdToken({ sub: 'x' });
      const kid = String(decodeJwtPart(idToken, 0)['kid']);
      const jwk = jwks.keys.find((key) => key.kid === kid);
      expect(jwk).to.include({ kty: 'RSA', alg: 'RS256', use: 'sig' });
      const [header, payload, signature] = idToken.split('.');
      const verifier = createVerify('RSA-SHA256');
      verifier.update(`${header}.${payload}`);
      const key = createPublicKey({ key: jwk ?? {}, format: 'jwk' });
      expect(verifier.verify(key, Buffer.from(signature ?? '', 'base64url'))).to.equal(true);
    });
  });

  describe('faults', () => {
    it('lets google-auth-library retry transient 503s on the token endpoint without consuming the code', async () => {
      const server = await start();
      const code = server.mintCode(newUser(), { scopes: SCOPES });
      server.injectFault({ endpoint: 'token', kind: 'status', status: 503, times: 2 });
      const { tokens } = await clientFor(server).getToken({ code, redirect_uri: '' });
      expect(tokens.refresh_token).to.be.a('string');
      expect(server.stats()).to.include({ token: 3, authorizationCode: 3 });
    });

    it('gives up after four attempts on a persistent 503', async () => {
      const server = await start();
      const code = server.mintCode(newUser(), { scopes: SCOPES });
      server.injectFault({ endpoint: 'token', kind: 'status', status: 503, times: 10 });
      const started = Date.now();
      const err = await httpFailure(clientFor(server).getToken({ code, redirect_uri: '' }));
      const elapsed = Date.now() - started;
      expect(err.response.status).to.equal(503);
      expect(err.response.data).to.deep.include({ error: 'temporarily_unavailable' });
      expect(server.stats().token).to.equal(4);
      expect(elapsed).to.be.within(1900, 5000);

      server.clearFaults();
      expect((await clientFor(server).getToken({ code, redirect_uri: '' })).tokens.access_token).to.be.a('string');
    }).timeout(10_000);

    it('sends Retry-After on 429, which the library ignores while retrying', async () => {
      const server = await start();
      server.injectFault({ endpoint: 'token', kind: 'status', status: 429, retryAfterSeconds: 30 });
      const raw = await fetch(server.endpoints.tokenUrl, { method: 'POST', headers: FORM, body: '' });
      expect(raw.status).to.equal(429);
      expect(raw.headers.get('retry-after')).to.equal('30');
      expect(((await raw.json()) as Record<string, unknown>)['error']).to.equal('rate_limit_exceeded');

      const code = server.mintCode(newUser(), { scopes: SCOPES });
      server.injectFault({ endpoint: 'token', kind: 'status', status: 429, retryAfterSeconds: 30 });
      const started = Date.now();
      await clientFor(server).getToken({ code, redirect_uri: '' });
      expect(Date.now() - started).to.be.below(5000);
      expect(server.stats().token).to.equal(3);
    });

    it('does not retry a 4xx fault', async () => {
      const server = await start();
      server.injectFault({ endpoint: 'token', kind: 'status', status: 400 });
      const err = await httpFailure(clientFor(server).refresh('1//whatever'));
      expect(err.response.status).to.equal(400);
      expect(server.stats()).to.include({ token: 1, refreshToken: 1 });
    });

    it('delays the response but applies the request, so a client that gives up has spent its code', async () => {
      const server = await start();
      const client = clientFor(server);
      const slowCode = server.mintCode(newUser(), { scopes: SCOPES });
      server.injectFault({ endpoint: 'token', kind: 'delay', ms: 300 });
      const started = Date.now();
      await client.getToken({ code: slowCode, redirect_uri: '' });
      expect(Date.now() - started).to.be.at.least(290);

      const abandoned = server.mintCode(newUser(), { scopes: SCOPES });
      server.injectFault({ endpoint: 'token', kind: 'delay', ms: 2000 });
      const aborted = await rejection(
        fetch(server.endpoints.tokenUrl, {
          method: 'POST',
          headers: FORM,
          body: new URLSearchParams(tokenForm({ grant_type: 'authorization_code', code: abandoned })),
          signal: AbortSignal.timeout(100),
        }),
      );
      expect(aborted.name).to.equal('TimeoutError');
      const err = await httpFailure(client.getToken({ code: abandoned, redirect_uri: '' }));
      expect(err.response.data).to.deep.include({ error: 'invalid_grant' });
    });

    it('returns a 200 non-JSON body, which getToken hands back as a string instead of failing', async () => {
      const server = await start();
      const code = server.mintCode(newUser(), { scopes: SCOPES });
      server.injectFault({ endpoint: 'token', kind: 'malformed' });
      const result = await clientFor(server).getToken({ code, redirect_uri: '' });
      expect(result.res?.status).to.equal(200);
      const tokens: unknown = result.tokens;
      expect(tokens).to.be.a('string');
      expect(() => JSON.parse(String(tokens))).to.throw(SyntaxError);
      // The code was not consumed by the faulted request.
      expect((await clientFor(server).getToken({ code, redirect_uri: '' })).tokens.access_token).to.be.a('string');
    });

    it('fails cert fetches with a status fault (retried) and a malformed body', async () => {
      const server = await start({ certsMaxAgeSeconds: 0 });
      const code = server.mintCode(newUser(), { scopes: SCOPES });
      const idToken = (await clientFor(server).getToken({ code, redirect_uri: '' })).tokens.id_token ?? '';

      server.injectFault({ endpoint: 'certs', kind: 'status', status: 500 });
      await clientFor(server).verifyIdToken({ idToken, audience: SERVER_CLIENT_ID });
      expect(server.stats().certs).to.equal(2);

      server.injectFault({ endpoint: 'certs', kind: 'malformed' });
      await rejection(clientFor(server).verifyIdToken({ idToken, audience: SERVER_CLIENT_ID }));
      expect(server.stats().certs).to.equal(3);
    });

    it('faults revoke requests, leaving the grant intact until a request gets through', async () => {
      const server = await start();
      const client = clientFor(server);
      const { tokens } = await client.getToken({ code: server.mintCode(newUser(), { scopes: SCOPES }), redirect_uri: '' });
      server.injectFault({ endpoint: 'revoke', kind: 'status', status: 403 });
      const refused = await postForm(server.endpoints.revokeUrl, { token: tokens.refresh_token ?? '' });
      expect(refused.status).to.equal(403);
      expect((await client.refresh(tokens.refresh_token ?? '')).tokens.access_token).to.be.a('string');

      server.injectFault({ endpoint: 'revoke', kind: 'status', status: 503 });
      expect((await client.revokeToken(tokens.refresh_token ?? '')).status).to.equal(200);
      expect(server.stats()).to.include({ revoke: 3, revokeTokenInQuery: 2 });
    });

    it('applies queued faults in order, each for its count, and clearFaults drops the rest', async () => {
      const server = await start();
      server.injectFault({ endpoint: 'token', kind: 'status', status: 502, times: 2 });
      server.injectFault({ endpoint: 'token', kind: 'malformed' });
      server.injectFault({ endpoint: 'token', kind: 'status', status: 418 });
      const statuses: number[] = [];
      for (let i = 0; i < 3; i += 1) {
        statuses.push((await fetch(server.endpoints.tokenUrl, { method: 'POST', headers: FORM, body: '' })).status);
      }
      expect(statuses).to.deep.equal([502, 502, 200]);
      server.clearFaults();
      const clean = await postForm(server.endpoints.tokenUrl, tokenForm({}));
      expect(clean).to.deep.include({ status: 400 });
      expect(() => server.injectFault({ endpoint: 'token', kind: 'status', status: 503, times: 0 })).to.throw(RangeError);
    });

    it('drops the named fields from an answer whose request took effect (missing-fields)', async () => {
      const server = await start();
      const code = server.mintCode(newUser(), { scopes: SCOPES });
      server.injectFault({ endpoint: 'token', kind: 'missing-fields', fields: ['access_token', 'refresh_token'] });
      const first = await postForm(server.endpoints.tokenUrl, tokenForm({ grant_type: 'authorization_code', code }));
      expect(first.status).to.equal(200);
      expect(first.body).to.not.have.any.keys('access_token', 'refresh_token');
      expect(first.body).to.include({ expires_in: 3600, token_type: 'Bearer' });
      // The exchange happened: the code is spent.
      const again = await postForm(server.endpoints.tokenUrl, tokenForm({ grant_type: 'authorization_code', code }));
      expect(again).to.deep.include({ status: 400, body: { error: 'invalid_grant', error_description: 'Bad Request' } });

      const { tokens } = await clientFor(server).getToken({ code: server.mintCode(newUser(), { scopes: SCOPES }), redirect_uri: '' });
      server.injectFault({ endpoint: 'token', kind: 'missing-fields', fields: ['expires_in'], times: 2 });
      for (let i = 0; i < 2; i += 1) {
        const refreshed = await postForm(server.endpoints.tokenUrl, tokenForm({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token ?? '' }));
        expect(refreshed.body).to.not.have.property('expires_in');
        expect(refreshed.body['access_token']).to.match(/^ya29\./);
      }
      const clean = await postForm(server.endpoints.tokenUrl, tokenForm({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token ?? '' }));
      expect(clean.body['expires_in']).to.equal(3600);
      expect(() => server.injectFault({ endpoint: 'token', kind: 'missing-fields', fields: [] })).to.throw(RangeError);
      expect(() => server.injectFault({ endpoint: 'token', kind: 'missing-fields', fields: [''] })).to.throw(RangeError);
    });

    it('resets the connection after the request took effect, so the code is spent without an answer (reset)', async () => {
      const server = await start();
      const code = server.mintCode(newUser(), { scopes: SCOPES });
      server.injectFault({ endpoint: 'token', kind: 'reset' });
      const dropped = await rejection(
        fetch(server.endpoints.tokenUrl, {
          method: 'POST',
          headers: FORM,
          body: new URLSearchParams(tokenForm({ grant_type: 'authorization_code', code })),
        }),
      );
      expect(dropped).to.be.instanceOf(TypeError);
      expect(server.stats()).to.include({ token: 1, authorizationCode: 1 });
      const err = await httpFailure(clientFor(server).getToken({ code, redirect_uri: '' }));
      expect(err.response.data).to.deep.include({ error: 'invalid_grant' });
      // Only the one request was reset.
      const code2 = server.mintCode(newUser(), { scopes: SCOPES });
      expect((await clientFor(server).getToken({ code: code2, redirect_uri: '' })).tokens.access_token).to.be.a('string');
    });
  });

  describe('stats, secrets, control API and lifecycle', () => {
    it('counts every request by endpoint and grant type, and resets', async () => {
      const server = await start();
      const client = clientFor(server);
      const { tokens } = await client.getToken({ code: server.mintCode(newUser(), { scopes: SCOPES }), redirect_uri: '' });
      await client.refresh(tokens.refresh_token ?? '');
      await httpFailure(client.refresh('1//nope'));
      await postForm(server.endpoints.tokenUrl, tokenForm({ grant_type: 'password' }));
      await client.verifyIdToken({ idToken: tokens.id_token ?? '', audience: SERVER_CLIENT_ID });
      await fetch(server.endpoints.jwksUrl);
      await client.getTokenInfo(tokens.access_token ?? '');
      await postForm(server.endpoints.revokeUrl, { token: tokens.access_token ?? '' });

      const expected = {
        token: 4,
        authorizationCode: 1,
        refreshToken: 2,
        certs: 2,
        revoke: 1,
        revokeTokenInQuery: 0,
        tokenInfo: 1,
      };
      expect(server.stats()).to.deep.equal(expected);
      const remote = await fetch(`${server.url}/_control/stats`);
      expect(await remote.json()).to.deep.equal(expected);
      server.resetStats();
      expect(Object.values(server.stats()).every((count) => count === 0)).to.equal(true);
    });

    it('lists every issued secret', async () => {
      const server = await start();
      const client = clientFor(server);
      const code = server.mintCode(newUser(), { scopes: SCOPES });
      const { tokens } = await client.getToken({ code, redirect_uri: '' });
      const refreshed = await client.refresh(tokens.refresh_token ?? '');
      const signed = server.signIdToken({ sub: 'x' });
      const secrets = server.issuedSecrets();
      expect(secrets).to.include.members([
        code,
        tokens.access_token,
        tokens.refresh_token,
        tokens.id_token,
        refreshed.tokens.access_token,
        refreshed.tokens.id_token,
        signed,
      ]);
    });

    it('shows that a GaxiosError from refresh carries the refresh token in its config', async () => {
      const server = await start();
      const client = clientFor(server);
      const { tokens } = await client.getToken({ code: server.mintCode(newUser(), { scopes: SCOPES }), redirect_uri: '' });
      const refreshToken = tokens.refresh_token ?? '';
      server.injectFault({ endpoint: 'token', kind: 'status', status: 400 });
      const err = await httpFailure(client.refresh(refreshToken));
      expect(err.message).to.not.contain(refreshToken);
      // gaxios redacts client_secret and grant_type, not refresh_token or code.
      expect(inspect(err, { depth: 8 })).to.contain(refreshToken);
      expect(inspect(err, { depth: 8 })).to.not.contain(SERVER_CLIENT_SECRET);
    });

    it('mints codes and revokes users through the control API', async () => {
      const server = await start();
      const client = clientFor(server);
      const user = newUser();
      const minted = await fetch(`${server.url}/_control/codes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ user, scopes: SCOPES, appClientId: 'android.apps.googleusercontent.com' }),
      });
      expect(minted.status).to.equal(200);
      const { code } = (await minted.json()) as { code: string };
      const { tokens } = await client.getToken({ code, redirect_uri: '' });
      expect(decodeJwtPart(tokens.id_token ?? '', 1)).to.include({ sub: user.sub, azp: 'android.apps.googleusercontent.com' });

      const revoked = await fetch(`${server.url}/_control/users/${encodeURIComponent(user.sub)}/revoke`, { method: 'POST' });
      expect(revoked.status).to.equal(200);
      const err = await httpFailure(client.refresh(tokens.refresh_token ?? ''));
      expect(err.response.data).to.deep.include({ error: 'invalid_grant' });

      const bad = await fetch(`${server.url}/_control/codes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ user: { sub: 'x' }, scopes: SCOPES }),
      });
      expect(bad.status).to.equal(400);
      const empty = await fetch(`${server.url}/_control/codes`, {
        method: 'POST',
        body: JSON.stringify({ user, scopes: [] }),
      });
      expect(empty.status).to.equal(400);
      expect((await fetch(`${server.url}/_control/nothing`)).status).to.equal(404);
    });

    it('reports live access tokens through tokeninfo', async () => {
      let clock = Date.now();
      const server = await start({ now: () => clock, accessTokenTtlSeconds: 60 });
      const client = clientFor(server);
      const user = newUser();
      const { tokens } = await client.getToken({ code: server.mintCode(user, { scopes: SCOPES }), redirect_uri: '' });
      const info = await client.getTokenInfo(tokens.access_token ?? '');
      expect(info).to.include({ sub: user.sub, aud: SERVER_CLIENT_ID, email: user.email, access_type: 'offline' });
      expect(info.scopes).to.deep.equal(SCOPES);
      clock += 60_000;
      await httpFailure(client.getTokenInfo(tokens.access_token ?? ''));
    });

    it('closes promptly with a delayed response in flight and refuses connections afterwards', async () => {
      const server = await start();
      server.injectFault({ endpoint: 'certs', kind: 'delay', ms: 60_000 });
      const inFlight = rejection(fetch(server.endpoints.pemCertsUrl));
      await new Promise((resolve) => setTimeout(resolve, 50));
      const started = Date.now();
      await server.close();
      expect(Date.now() - started).to.be.below(1000);
      await inFlight;
      await rejection(fetch(server.endpoints.pemCertsUrl));
      await server.close();
    });

    it('rejects invalid options', async () => {
      await rejection(LocalOAuthServer.start({ clientId: '', clientSecret: 's' }));
      await rejection(LocalOAuthServer.start({ clientId: 'c', clientSecret: 's', accessTokenTtlSeconds: 0 }));
    });
  });
});
