/**
 * Public shapes of the local OAuth server. They live apart from the class so that
 * the grant registry, the fault queue and the HTTP handlers can share them without
 * importing the server itself.
 */

/** Options for {@link LocalOAuthServer.start}. */
export interface LocalOAuthServerOptions {
  /** The broker's server OAuth client ID: the only client allowed to call the token endpoint. */
  clientId: string;
  /** Secret of {@link clientId}. */
  clientSecret: string;
  /**
   * Mobile app client IDs. They never authenticate here (Google's apps hand the server
   * a code instead); they only appear as `azp` in minted ID tokens, which defaults to
   * `appClientIds[0] ?? clientId`.
   */
  appClientIds?: string[];
  /** Lifetime of issued access tokens. Default 3600. */
  accessTokenTtlSeconds?: number;
  /** Lifetime of minted authorization codes. Default 600. */
  codeTtlSeconds?: number;
  /** `cache-control: max-age` sent by the cert endpoints. Default 300; 0 makes google-auth-library refetch every time. */
  certsMaxAgeSeconds?: number;
  /**
   * Millisecond clock used for code expiry and for token `iat`/`exp`. Default `Date.now`.
   * Note that google-auth-library checks ID-token times against the real clock.
   */
  now?: () => number;
}

/** A Google account as the ID token describes it. */
export interface TestUser {
  /** Stable Google account ID. */
  sub: string;
  email: string;
  /** Default true. */
  emailVerified?: boolean;
  name?: string;
  givenName?: string;
  familyName?: string;
  picture?: string;
  locale?: string;
  /** Workspace domain; the `hd` claim is present only when this is set. */
  hostedDomain?: string;
}

/** How an ID token should be signed. */
export type SignatureMode = 'valid' | 'tampered' | 'unknown-kid';

/** Deliberate defects for the ID token returned with a code exchange. */
export interface IdTokenTweaks {
  aud?: string;
  azp?: string;
  iss?: string;
  /** Lifetime from issue; zero or negative makes the token already expired. Default 3600. */
  expiresInSeconds?: number;
  /** `tampered` changes one signature byte; `unknown-kid` signs with a key never published. */
  signature?: SignatureMode;
}

/** What a minted authorization code grants when it is exchanged. */
export interface MintCodeOptions {
  scopes: string[];
  /** True when the user saw the consent screen (prompt=consent): the exchange then carries a refresh token. */
  consent?: boolean;
  /** The app client that obtained the code; becomes `azp`. */
  appClientId?: string;
  /** The redirect_uri the exchange must repeat. Default '' (absent and '' are equal). */
  redirectUri?: string;
  /** Overrides {@link LocalOAuthServerOptions.codeTtlSeconds} for this code. */
  ttlSeconds?: number;
  idToken?: IdTokenTweaks;
}

/** Endpoints a fault can be injected into. */
export type FaultEndpoint = 'token' | 'certs' | 'revoke';

/**
 * A failure to apply to the next `times` requests (default 1) reaching `endpoint`.
 *
 * - `status`: answers `status` with an OAuth-style error body (and Retry-After when
 *   given) instead of handling the request.
 * - `delay`: handles the request, then holds its answer for `ms`.
 * - `malformed`: answers 200 with a body that is not JSON, without handling the request.
 * - `missing-fields`: handles the request and drops `fields` from its JSON answer
 *   (for example `access_token` or `expires_in` from a token response).
 * - `reset`: handles the request, then closes the connection without answering,
 *   as when a connection drops after Google acted.
 */
export type FaultSpec = { endpoint: FaultEndpoint; times?: number } & (
  | { kind: 'status'; status: number; retryAfterSeconds?: number }
  | { kind: 'delay'; ms: number }
  | { kind: 'malformed' }
  | { kind: 'missing-fields'; fields: string[] }
  | { kind: 'reset' }
);

/** Requests that reached each endpoint, faulted ones included. */
export interface OAuthServerStats {
  /** Every request to the token endpoint, whatever its grant type or outcome. */
  token: number;
  authorizationCode: number;
  refreshToken: number;
  /** Both the PEM and the JWKS cert endpoints. */
  certs: number;
  revoke: number;
  /**
   * Revoke requests that carried the token in the URL query, as google-auth-library's
   * revokeToken does. Counted because a token in a URL ends up in access logs.
   */
  revokeTokenInQuery: number;
  tokenInfo: number;
}

/** Absolute URLs of the server's Google-like endpoints. */
export interface LocalOAuthEndpoints {
  tokenUrl: string;
  revokeUrl: string;
  /** JSON `{kid: PEM}`, what google-auth-library's verifyIdToken reads on Node. */
  pemCertsUrl: string;
  /** The same keys as a JWK set. */
  jwksUrl: string;
  /** Access-token introspection, like https://oauth2.googleapis.com/tokeninfo. */
  tokenInfoUrl: string;
  /** The RISC signing keys (JWK set) Security Event Tokens are signed with, like the `jwks_uri` of Google's RISC configuration. */
  riscJwksUrl: string;
}
