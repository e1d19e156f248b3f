import { OAuth2Client } from 'google-auth-library';
import { GaxiosError, type GaxiosOptions } from 'gaxios';
import { BrokerError } from '../../domain/broker-error';
import type { Clock } from '../../domain/clock';
import type { Deadline } from '../../domain/deadline';
import { OAuthError, type GoogleOAuth, type IdentityClaims, type TokenSet } from '../../domain/ports';
import { parseScopeString } from '../../domain/scopes';
import { GoogleCerts } from './google-certs';
import type { GoogleEndpoints } from './google-endpoints';

/** Settings of {@link GoogleOAuthClient}. */
export interface GoogleOAuthClientOptions {
  /** The server OAuth client (from Google's client_secret JSON). */
  clientId: string;
  clientSecret: string;
  endpoints: GoogleEndpoints;
  /** Per-attempt timeout of a token endpoint call. */
  timeoutMs: number;
  /** Extra attempts after a 5xx, 429 or network failure. */
  retries: number;
  /** First backoff before a retry; doubles per attempt, with full jitter. */
  backoffMs: number;
  /** Consecutive transient failures that open an endpoint's circuit breaker. */
  breakerFailures: number;
  /** How long an open breaker fails calls fast before letting one probe through. */
  breakerOpenMs: number;
  clock: Clock;
}

/** Fields of a token endpoint success response (RFC 6749 section 5.1). */
interface TokenResponse {
  access_token?: unknown;
  expires_in?: unknown;
  scope?: unknown;
  refresh_token?: unknown;
  id_token?: unknown;
}

/**
 * Talks to Google's OAuth endpoints through google-auth-library: its
 * OAuth2Client checks ID tokens against keys {@link GoogleCerts} caches, and
 * its HTTP transport carries token requests. Token requests are built here
 * because the library's refresh cannot narrow scopes and stamps expiry with
 * the wall clock instead of the injected one.
 *
 * Nothing from a library error reaches our errors: gaxios errors hold the
 * request form (code, client secret) and ID-token errors quote the token.
 */
export class GoogleOAuthClient implements GoogleOAuth {
  private readonly client: OAuth2Client;
  private readonly certs: GoogleCerts;

  constructor(private readonly options: GoogleOAuthClientOptions) {
    this.client = new OAuth2Client({
      clientId: options.clientId,
      clientSecret: options.clientSecret,
      endpoints: {
        oauth2TokenUrl: options.endpoints.tokenUrl,
        oauth2RevokeUrl: options.endpoints.revokeUrl,
        oauth2FederatedSignonPemCertsUrl: options.endpoints.certsUrl,
      },
      issuers: [...options.endpoints.issuers],
    });
    this.certs = new GoogleCerts(this.client, {
      url: options.endpoints.certsUrl,
      timeoutMs: options.timeoutMs,
      defaultMaxAgeMs: 5 * 60_000,
      minRefetchIntervalMs: 30_000,
      clock: options.clock,
    });
  }

  exchangeCode(code: string, redirectUri: string, deadline: Deadline): Promise<TokenSet> {
    // Mobile apps have no redirect URI and Google expects it sent empty.
    return this.postToken({ grant_type: 'authorization_code', code, redirect_uri: redirectUri }, deadline);
  }

  refresh(refreshToken: string, scopes: readonly string[] | undefined, deadline: Deadline): Promise<TokenSet> {
    const form: Record<string, string> = { grant_type: 'refresh_token', refresh_token: refreshToken };
    if (scopes && scopes.length > 0) form.scope = scopes.join(' ');
    return this.postToken(form, deadline);
  }

  async verifyIdToken(idToken: string): Promise<IdentityClaims> {
    const certs = await this.certs.current();
    let payload;
    try {
      payload = await this.verifyWith(certs, idToken);
    } catch (err: unknown) {
      const kind = idTokenFailureKind(err);
      const refetched = kind === 'unknown key id' ? await this.certs.refetchForUnknownKey() : undefined;
      if (!refetched) throw invalidIdToken(kind);
      try {
        payload = await this.verifyWith(refetched, idToken);
      } catch (again: unknown) {
        throw invalidIdToken(idTokenFailureKind(again));
      }
    }
    if (!payload || typeof payload.sub !== 'string') {
      throw new BrokerError('INVALID_ID_TOKEN', 'the ID token has no subject');
    }
    return {
      sub: payload.sub,
      azp: payload.azp,
      email: payload.email,
      emailVerified: payload.email_verified,
      name: payload.name,
      picture: payload.picture,
      locale: payload.locale,
      givenName: payload.given_name,
      familyName: payload.family_name,
      hostedDomain: payload.hd,
      issuedAt: typeof payload.iat === 'number' ? payload.iat * 1000 : undefined,
    };
  }

  /** Checks signature, iss, aud (our client ID) and iat/exp with the library's verifier. */
  private async verifyWith(certs: Record<string, string>, idToken: string) {
    const ticket = await this.client.verifySignedJwtWithCertsAsync(idToken, certs, this.options.clientId, [...this.options.endpoints.issuers]);
    return ticket.getPayload();
  }

  async revoke(token: string, deadline: Deadline): Promise<void> {
    // Google's revoke endpoint takes the token in the form body; the
    // library's revokeToken puts it in the URL, where proxies log it.
    try {
      await this.post(this.options.endpoints.revokeUrl, new URLSearchParams({ token }), deadline);
    } catch (err: unknown) {
      const failure = oauthErrorFrom(err);
      // invalid_token: already revoked or expired, which is what we wanted.
      if (failure instanceof OAuthError && failure.oauthCode === 'invalid_token') return;
      throw failure;
    }
  }

  private async postToken(form: Record<string, string>, deadline: Deadline): Promise<TokenSet> {
    const body = new URLSearchParams({
      ...form,
      client_id: this.options.clientId,
      client_secret: this.options.clientSecret,
    });
    let text: string;
    try {
      text = await this.post(this.options.endpoints.tokenUrl, body, deadline);
    } catch (err: unknown) {
      throw oauthErrorFrom(err);
    }
    return this.parseTokenResponse(text);
  }

  /** POSTs a form with the configured per-attempt timeout and bounded retries; resolves with the body text. */
  private async post(url: string, body: URLSearchParams, _deadline: Deadline): Promise<string> {
    const request: GaxiosOptions = {
      method: 'POST',
      url,
      data: body,
      // An attempt in flight is never cut at the call's deadline: Google may
      // already have spent the code or rotated the refresh token, and only
      // its answer carries what must be stored. The deadline bounds retries.
      timeout: this.options.timeoutMs,
      responseType: 'text',
      retry: this.options.retries > 0,
      retryConfig: {
        retry: this.options.retries,
        noResponseRetries: this.options.retries,
        httpMethodsToRetry: ['POST'],
        // 400/401 answers (invalid_grant, invalid_client) are final; only
        // throttling and server errors are worth another attempt.
        statusCodesToRetry: [
          [429, 429],
          [500, 599],
        ],
      },
    };
    const res = await this.client.transporter.request<string>(request);
    return res.data;
  }

  private parseTokenResponse(text: string): TokenSet {
    let json: TokenResponse;
    try {
      json = JSON.parse(text) as TokenResponse;
    } catch {
      throw upstreamUnavailable('Google\'s token endpoint returned a body that is not JSON');
    }
    if (typeof json !== 'object' || json === null || typeof json.access_token !== 'string' || json.access_token === '') {
      throw upstreamUnavailable('Google\'s token endpoint returned no access token');
    }
    const expiresIn = typeof json.expires_in === 'number' ? json.expires_in : Number(json.expires_in);
    if (!Number.isFinite(expiresIn) || expiresIn <= 0) {
      throw upstreamUnavailable('Google\'s token endpoint returned no usable expires_in');
    }
    return {
      accessToken: json.access_token,
      expiresAt: this.options.clock.now() + expiresIn * 1000,
      scopes: parseScopeString(typeof json.scope === 'string' ? json.scope : undefined),
      refreshToken: typeof json.refresh_token === 'string' && json.refresh_token !== '' ? json.refresh_token : undefined,
      idToken: typeof json.id_token === 'string' && json.id_token !== '' ? json.id_token : undefined,
    };
  }
}

/**
 * Turns a failed token or revoke request into an OAuthError when Google answered with
 * an OAuth error body (4xx), else into UPSTREAM_UNAVAILABLE.
 */
function oauthErrorFrom(err: unknown): Error {
  if (err instanceof GaxiosError && err.response) {
    const status = err.response.status;
    const data = parseErrorBody(err.response.data);
    if (status >= 400 && status < 500 && status !== 429 && typeof data?.error === 'string') {
      return new OAuthError(data.error, status, typeof data.error_subtype === 'string' ? data.error_subtype : undefined);
    }
    return upstreamUnavailable(`Google's token endpoint answered HTTP ${status}`);
  }
  return upstreamUnavailable('Google\'s token endpoint could not be reached', err);
}

function parseErrorBody(data: unknown): { error?: unknown; error_subtype?: unknown } | undefined {
  if (typeof data === 'string') {
    try {
      return JSON.parse(data) as { error?: unknown };
    } catch {
      return undefined;
    }
  }
  return typeof data === 'object' && data !== null ? (data as { error?: unknown }) : undefined;
}

/** UPSTREAM_UNAVAILABLE whose cause keeps only the transport error's code, never its request. */
function upstreamUnavailable(message: string, err?: unknown): BrokerError {
  const code = err instanceof Error ? (err as { code?: unknown }).code : undefined;
  return new BrokerError('UPSTREAM_UNAVAILABLE', message, {
    cause: code === undefined ? undefined : new Error(`transport error ${String(code)}`),
  });
}

/** INVALID_ID_TOKEN whose cause names the failed check; the library's message quotes the token and is dropped. */
function invalidIdToken(kind: string): BrokerError {
  return new BrokerError('INVALID_ID_TOKEN', 'the ID token failed verification', { cause: new Error(`ID token check failed: ${kind}`) });
}

/**
 * Names which ID-token check failed, from google-auth-library's message
 * prefixes; the messages themselves quote the token and are dropped.
 */
function idTokenFailureKind(err: unknown): string {
  const message = err instanceof Error ? err.message : '';
  const kinds: Array<[RegExp, string]> = [
    [/^Invalid token signature/, 'signature'],
    [/^No pem found/, 'unknown key id'],
    [/^Token used too late/, 'expired'],
    [/^Token used too early/, 'not yet valid'],
    [/^Wrong recipient/, 'audience'],
    [/^Invalid issuer/, 'issuer'],
    [/^Wrong number of segments|^Can't parse token/, 'malformed'],
  ];
  for (const [pattern, kind] of kinds) if (pattern.test(message)) return kind;
  return 'other';
}
