import type { Tracer } from '@opentelemetry/api';
import { OAuth2Client, type Certificates } from 'google-auth-library';
import { BrokerError } from '../../domain/broker-error';
import type { Clock } from '../../domain/clock';
import type { Deadline } from '../../domain/deadline';
import { OAuthError, type GoogleOAuth, type IdentityClaims, type TokenSet } from '../../domain/ports';
import { parseScopeString } from '../../domain/scopes';
import type { Logger } from '../../observability/logger';
import { NO_METRICS, type Metrics, type UpstreamOutcome } from '../../observability/metrics';
import { endClientSpan, startClientSpan } from '../../observability/tracing';
import { judgeAttemptFailure } from './attempt-failure';
import { CircuitBreaker, type BreakerState } from './circuit-breaker';
import { FormPoster, HttpAnswerError, HttpTransportError } from './form-post';
import { GoogleCerts } from './google-certs';
import type { GoogleEndpoints } from './google-endpoints';
import { checkIdToken } from './id-token-check';
import { BreakerOpenError, withRetries, type RetryPolicy } from './retry-policy';

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
  /** Receives circuit breaker state changes; nothing is logged without it. */
  logger?: Logger;
  /** Counts every request by outcome, its duration, and breaker state (default: nothing recorded). */
  metrics?: Metrics;
  /** Makes a client span of every request when tracing is on. */
  tracer?: Tracer;
}

/** Which of Google's OAuth endpoints a request goes to; names it in messages and logs. */
type EndpointName = 'token' | 'revoke';

/** One endpoint with its own circuit breaker. */
interface Endpoint {
  name: EndpointName;
  url: string;
  breaker: CircuitBreaker;
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
 * Talks to Google's OAuth endpoints. google-auth-library's OAuth2Client
 * checks ID tokens against keys {@link GoogleCerts} caches. Token and revoke
 * requests are built and sent here ({@link FormPoster}): the library's
 * refresh cannot narrow scopes and stamps expiry with the wall clock instead
 * of the injected one, and its HTTP transport (gaxios) costs three times the
 * CPU per request.
 *
 * Token and revoke requests are retried here, so that retries honour
 * Retry-After and the call's deadline (see {@link withRetries}), and each
 * endpoint has its own circuit breaker ({@link CircuitBreaker}).
 *
 * Nothing from a library error reaches our errors: ID-token errors quote the
 * token. Transport errors carry only a status or a system error code.
 */
export class GoogleOAuthClient implements GoogleOAuth {
  private readonly client: OAuth2Client;
  private readonly certs: GoogleCerts;
  private readonly tokenEndpoint: Endpoint;
  private readonly revokeEndpoint: Endpoint;
  private readonly retryPolicy: RetryPolicy;
  private readonly http = new FormPoster();

  constructor(private readonly options: GoogleOAuthClientOptions) {
    // The library only checks ID tokens (audience and issuers passed per call) and carries
    // the certs fetch: it needs neither the client secret nor the token and revoke URLs.
    this.client = new OAuth2Client({ clientId: options.clientId });
    this.certs = new GoogleCerts(this.client, {
      url: options.endpoints.certsUrl,
      timeoutMs: options.timeoutMs,
      defaultMaxAgeMs: 5 * 60_000,
      minRefetchIntervalMs: 30_000,
      clock: options.clock,
      metrics: options.metrics,
    });
    this.tokenEndpoint = this.endpoint('token', options.endpoints.tokenUrl);
    this.revokeEndpoint = this.endpoint('revoke', options.endpoints.revokeUrl);
    this.retryPolicy = { maxAttempts: 1 + options.retries, backoffMs: options.backoffMs };
  }

  private endpoint(name: EndpointName, url: string): Endpoint {
    const { logger, metrics = NO_METRICS } = this.options;
    const breaker = new CircuitBreaker({
      failureThreshold: this.options.breakerFailures,
      openMs: this.options.breakerOpenMs,
      onStateChange: (state) => {
        // Half-open still refuses all but the probe: it counts as open until the probe succeeds.
        metrics.upstreamBreakerOpen(name, state !== 'closed');
        if (logger) logBreakerState(logger, name, state);
      },
    });
    return { name, url, breaker };
  }

  exchangeCode(code: string, redirectUri: string, deadline: Deadline): Promise<TokenSet> {
    // Mobile apps have no redirect URI and Google expects it sent empty.
    // A code is spent by the first request that reaches Google: after a
    // timeout or a reset (sent, no answer) a resend would only earn
    // invalid_grant, and the caller would wrongly hear INVALID_AUTH_CODE for
    // a sign-in that may have worked. So such a failure is final here and
    // answers UPSTREAM_UNAVAILABLE; 5xx, 429 and failures to connect (the
    // request never left) are still retried, since Google did not act on them.
    return this.postToken({ grant_type: 'authorization_code', code, redirect_uri: redirectUri }, deadline, false);
  }

  refresh(refreshToken: string, scopes: readonly string[] | undefined, deadline: Deadline): Promise<TokenSet> {
    const form: Record<string, string> = { grant_type: 'refresh_token', refresh_token: refreshToken };
    if (scopes && scopes.length > 0) form.scope = scopes.join(' ');
    return this.postToken(form, deadline, true);
  }

  async verifyIdToken(idToken: string): Promise<IdentityClaims> {
    const checked = await checkIdToken(this.certs, (keys) => this.verifyWith(keys, idToken));
    if (!checked.ok) throw invalidIdToken(checked.failed);
    const payload = checked.value;
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
  private async verifyWith(certs: Certificates, idToken: string) {
    const ticket = await this.client.verifySignedJwtWithCertsAsync(idToken, certs, this.options.clientId, [...this.options.endpoints.issuers]);
    return ticket.getPayload();
  }

  async revoke(token: string, deadline: Deadline): Promise<void> {
    // Google's revoke endpoint takes the token in the form body; the
    // library's revokeToken puts it in the URL, where proxies log it.
    // Revoking twice is harmless, so a request without an answer is resent.
    try {
      await this.post(this.revokeEndpoint, new URLSearchParams({ token }), deadline, true, () => undefined);
    } catch (err: unknown) {
      // invalid_token: already revoked or expired, which is what we wanted.
      if (err instanceof OAuthError && err.oauthCode === 'invalid_token') return;
      throw err;
    }
  }

  private postToken(form: Record<string, string>, deadline: Deadline, resendAfterNoAnswer: boolean): Promise<TokenSet> {
    const body = new URLSearchParams({
      ...form,
      client_id: this.options.clientId,
      client_secret: this.options.clientSecret,
    });
    return this.post(this.tokenEndpoint, body, deadline, resendAfterNoAnswer, (text) => this.parseTokenResponse(text));
  }

  /**
   * POSTs a form to `endpoint` and reads the 2xx body with `read`, retrying
   * transient failures within `deadline` (see {@link withRetries} and
   * {@link judgeAttemptFailure}). A body `read` rejects fails the attempt
   * and counts against the endpoint's breaker, but is not resent.
   *
   * Throws OAuthError for an OAuth error answer, BrokerError
   * UPSTREAM_UNAVAILABLE for every other failure (DEADLINE_EXCEEDED when
   * the deadline passed before the first attempt).
   */
  private async post<T>(
    endpoint: Endpoint,
    body: URLSearchParams,
    deadline: Deadline,
    resendAfterNoAnswer: boolean,
    read: (text: string) => T,
  ): Promise<T> {
    if (deadline.expired) {
      throw new BrokerError('DEADLINE_EXCEEDED', `the call's deadline passed before Google's ${endpoint.name} endpoint was called`);
    }
    const form = body.toString();
    // An attempt in flight is cut only by its per-attempt timeout, never at
    // the call's deadline: Google may already have spent the code or rotated
    // the refresh token, and only its answer carries what must be stored.
    // The deadline stops retries: no attempt starts after it.
    const attempt = () => this.observed(endpoint, async () => read(await this.http.post(endpoint.url, form, this.options.timeoutMs)));
    try {
      return await withRetries(attempt, (err) => judgeAttemptFailure(err, { resendAfterNoAnswer }), {
        policy: this.retryPolicy,
        deadline,
        breaker: endpoint.breaker,
      });
    } catch (err: unknown) {
      if (err instanceof BreakerOpenError) this.options.metrics?.upstreamRequest(endpoint.name, 'breaker_open', 0);
      throw failureFrom(err, endpoint.name);
    }
  }

  /** Runs one request to `endpoint`, counted by outcome and timed, in a client span when tracing is on. */
  private async observed<T>(endpoint: Endpoint, send: () => Promise<T>): Promise<T> {
    const { metrics, tracer } = this.options;
    const span = tracer
      ? startClientSpan(tracer, `POST ${endpoint.name}`, { 'http.request.method': 'POST', 'url.full': endpoint.url, 'tokenbroker.upstream.endpoint': endpoint.name })
      : undefined;
    const started = performance.now();
    let outcome: UpstreamOutcome = 'ok';
    try {
      return await send();
    } catch (err: unknown) {
      outcome = upstreamOutcomeOf(err);
      throw err;
    } finally {
      metrics?.upstreamRequest(endpoint.name, outcome, (performance.now() - started) / 1000);
      if (span) endClientSpan(span, { 'tokenbroker.upstream.outcome': outcome }, outcome !== 'ok');
    }
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

/** Our error for a failed request to `endpoint`: our own errors pass, library errors are mapped. */
function failureFrom(err: unknown, endpoint: EndpointName): Error {
  if (err instanceof BrokerError) return err;
  if (err instanceof BreakerOpenError) {
    return new BrokerError('UPSTREAM_UNAVAILABLE', `Google's ${endpoint} endpoint is failing; calls to it are paused for now. Retry later`);
  }
  return oauthErrorFrom(err, endpoint);
}

/**
 * Turns a failed token or revoke request into an OAuthError when Google answered with
 * an OAuth error body (4xx), else into UPSTREAM_UNAVAILABLE.
 */
function oauthErrorFrom(err: unknown, endpoint: EndpointName): Error {
  if (err instanceof HttpAnswerError) {
    const status = err.status;
    const data = parseErrorBody(err.body);
    if (status >= 400 && status < 500 && status !== 429 && typeof data?.error === 'string') {
      return new OAuthError(data.error, status, typeof data.error_subtype === 'string' ? data.error_subtype : undefined);
    }
    return upstreamUnavailable(`Google's ${endpoint} endpoint answered HTTP ${status}`);
  }
  return upstreamUnavailable(`Google's ${endpoint} endpoint could not be reached or did not answer in time`, err);
}

/**
 * How one failed request ended, as a metric label from a closed set: the
 * OAuth error Google answered (invalid_grant, or any other 4xx as
 * client_error), 429, 5xx, a 2xx we could not use, or no answer at all.
 */
function upstreamOutcomeOf(err: unknown): UpstreamOutcome {
  if (err instanceof HttpAnswerError) {
    const status = err.status;
    if (status === 429) return 'rate_limited';
    if (status >= 500) return 'server_error';
    return parseErrorBody(err.body)?.error === 'invalid_grant' ? 'invalid_grant' : 'client_error';
  }
  if (err instanceof HttpTransportError) {
    if (err.code === 'TIMEOUT') return 'timeout';
    return err.code === 'BODY_TOO_LARGE' ? 'bad_response' : 'network';
  }
  return 'bad_response';
}

/** The fields of an OAuth error answer (RFC 6749 section 5.2), if the body is a JSON object. */
function parseErrorBody(body: string): { error?: unknown; error_subtype?: unknown } | undefined {
  try {
    const data: unknown = JSON.parse(body);
    return typeof data === 'object' && data !== null ? (data as { error?: unknown; error_subtype?: unknown }) : undefined;
  } catch {
    return undefined;
  }
}

/** UPSTREAM_UNAVAILABLE whose cause is the transport error (a system error code, nothing of the request), if any. */
function upstreamUnavailable(message: string, err?: unknown): BrokerError {
  return new BrokerError('UPSTREAM_UNAVAILABLE', message, { cause: err instanceof HttpTransportError ? err : undefined });
}

/** One line per breaker state change: event, endpoint and state only. */
function logBreakerState(logger: Logger, endpoint: EndpointName, state: BreakerState): void {
  const fields = { event: 'upstream_breaker', endpoint, state };
  if (state === 'open') logger.warn(fields, `Google's ${endpoint} endpoint keeps failing: calls to it are paused`);
  else if (state === 'half-open') logger.info(fields, `probing Google's ${endpoint} endpoint`);
  else logger.info(fields, `Google's ${endpoint} endpoint answers again: calls resume`);
}

/** INVALID_ID_TOKEN whose cause names the failed check; the library's message quotes the token and is dropped. */
function invalidIdToken(kind: string): BrokerError {
  return new BrokerError('INVALID_ID_TOKEN', 'the ID token failed verification', { cause: new Error(`ID token check failed: ${kind}`) });
}
