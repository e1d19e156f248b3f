import type { Grant, GrantRegistry } from './grant-registry';
import type { JsonReply } from './http-io';
import { idTokenClaims, ID_TOKEN_LIFETIME_SECONDS, signWithMode } from './id-token';
import type { SigningKeyRing } from './signing-keys';

/** What the token endpoint needs from the server that hosts it. */
export interface TokenEndpointContext {
  clientId: string;
  clientSecret: string;
  issuer: string;
  accessTokenTtlSeconds: number;
  now: () => number;
  registry: GrantRegistry;
  keys: SigningKeyRing;
}

// Bodies copy Google's wording so code that matches on error_description can be tested.
const INVALID_CLIENT: JsonReply = { status: 401, body: { error: 'invalid_client', error_description: 'Unauthorized' } };
const BAD_CODE: JsonReply = { status: 400, body: { error: 'invalid_grant', error_description: 'Bad Request' } };
const DEAD_REFRESH_TOKEN: JsonReply = {
  status: 400,
  body: { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' },
};
// Token responses carry secrets; Google forbids caching them and so do we.
const NO_STORE = { 'cache-control': 'no-cache, no-store, max-age=0, must-revalidate', pragma: 'no-cache' };

function missingParameter(name: string): JsonReply {
  return { status: 400, body: { error: 'invalid_request', error_description: `Missing required parameter: ${name}` } };
}

function splitScopes(value: string): string[] {
  return value.split(/\s+/).filter((scope) => scope !== '');
}

interface ClientCredentials {
  id: string | null;
  secret: string | null;
}

/**
 * Client credentials from HTTP Basic or the form body. RFC 6749 lets a client use
 * either; a request whose two sources disagree names two clients and is refused.
 */
function clientCredentials(params: URLSearchParams, authorization: string | undefined): ClientCredentials | undefined {
  const bodyId = params.get('client_id');
  if (authorization === undefined) {
    return { id: bodyId, secret: params.get('client_secret') };
  }
  const match = /^Basic\s+(\S+)$/i.exec(authorization);
  if (match === null || match[1] === undefined) {
    return undefined;
  }
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) {
    return undefined;
  }
  const id = formDecode(decoded.slice(0, colon));
  const secret = formDecode(decoded.slice(colon + 1));
  if (bodyId !== null && bodyId !== id) {
    return undefined;
  }
  return { id, secret };
}

// RFC 6749 2.3.1 form-encodes Basic credentials, but many clients (google-auth-library
// among them) do not; accept both, since Google's IDs and secrets never need escaping.
function formDecode(value: string): string {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '));
  } catch {
    return value;
  }
}

/** Answers one POST to the token endpoint. */
export function handleTokenRequest(
  ctx: TokenEndpointContext,
  params: URLSearchParams,
  authorization: string | undefined,
): JsonReply {
  const credentials = clientCredentials(params, authorization);
  if (credentials === undefined || credentials.id !== ctx.clientId || credentials.secret !== ctx.clientSecret) {
    return INVALID_CLIENT;
  }
  const grantType = params.get('grant_type');
  if (grantType === null || grantType === '') {
    return missingParameter('grant_type');
  }
  switch (grantType) {
    case 'authorization_code':
      return exchangeCode(ctx, params);
    case 'refresh_token':
      return refresh(ctx, params);
    default:
      return {
        status: 400,
        body: { error: 'unsupported_grant_type', error_description: `Invalid grant_type: ${grantType}` },
      };
  }
}

function exchangeCode(ctx: TokenEndpointContext, params: URLSearchParams): JsonReply {
  const code = params.get('code');
  if (code === null || code === '') {
    return missingParameter('code');
  }
  const nowMs = ctx.now();
  const record = ctx.registry.redeemCode(code, params.get('redirect_uri') ?? '', nowMs);
  if (record === undefined) {
    return BAD_CODE;
  }
  const grant = ctx.registry.createGrant(record);
  const nowSeconds = Math.floor(nowMs / 1000);
  const tweaks = record.idToken;
  const claims = idTokenClaims(ctx.registry.profile(record.sub), {
    iss: tweaks.iss ?? ctx.issuer,
    aud: tweaks.aud ?? ctx.clientId,
    azp: tweaks.azp ?? record.azp,
    nowSeconds,
    expiresInSeconds: tweaks.expiresInSeconds ?? ID_TOKEN_LIFETIME_SECONDS,
  });
  const idToken = signWithMode(claims, ctx.keys, tweaks.signature ?? 'valid');
  ctx.registry.remember(idToken);
  const body: Record<string, unknown> = {
    access_token: ctx.registry.issueAccessToken(grant, grant.scopes, nowMs + ctx.accessTokenTtlSeconds * 1000),
    expires_in: ctx.accessTokenTtlSeconds,
    scope: grant.scopes.join(' '),
    token_type: 'Bearer',
    id_token: idToken,
  };
  if (grant.refreshToken !== undefined) {
    body['refresh_token'] = grant.refreshToken;
  }
  return { status: 200, body, headers: NO_STORE };
}

function refresh(ctx: TokenEndpointContext, params: URLSearchParams): JsonReply {
  const refreshToken = params.get('refresh_token');
  if (refreshToken === null || refreshToken === '') {
    return missingParameter('refresh_token');
  }
  const grant = ctx.registry.grantForRefreshToken(refreshToken);
  if (grant === undefined) {
    return DEAD_REFRESH_TOKEN;
  }
  const requested = splitScopes(params.get('scope') ?? '');
  const invalid = requested.filter((scope) => !grant.scopes.includes(scope));
  if (invalid.length > 0) {
    return {
      status: 400,
      body: {
        error: 'invalid_scope',
        error_description: `Some requested scopes were invalid. {invalid=[${invalid.join(', ')}]}`,
      },
    };
  }
  const scopes = requested.length > 0 ? requested : grant.scopes;
  const nowMs = ctx.now();
  const body: Record<string, unknown> = {
    access_token: ctx.registry.issueAccessToken(grant, scopes, nowMs + ctx.accessTokenTtlSeconds * 1000),
    expires_in: ctx.accessTokenTtlSeconds,
    scope: scopes.join(' '),
    token_type: 'Bearer',
  };
  const rotated = ctx.registry.rotateIfArmed(grant);
  if (rotated !== undefined) {
    body['refresh_token'] = rotated;
  }
  if (grant.scopes.includes('openid')) {
    body['id_token'] = refreshedIdToken(ctx, grant, nowMs);
  }
  return { status: 200, body, headers: NO_STORE };
}

// The grant keeps the azp it was authorized for, so a refreshed ID token names the
// same app as the one from the original exchange; the profile is the account's
// current one, as Google's refreshed ID tokens reflect profile changes.
function refreshedIdToken(ctx: TokenEndpointContext, grant: Grant, nowMs: number): string {
  const claims = idTokenClaims(ctx.registry.profile(grant.sub), {
    iss: ctx.issuer,
    aud: ctx.clientId,
    azp: grant.azp,
    nowSeconds: Math.floor(nowMs / 1000),
    expiresInSeconds: ID_TOKEN_LIFETIME_SECONDS,
  });
  const idToken = signWithMode(claims, ctx.keys, 'valid');
  ctx.registry.remember(idToken);
  return idToken;
}
