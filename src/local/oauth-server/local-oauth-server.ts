import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CONTROL_PREFIX, handleControlRequest, type ControlTarget } from './control-api';
import { errorCodeForStatus, FaultQueue, MALFORMED_BODY, withoutFields } from './faults';
import { GrantRegistry } from './grant-registry';
import { BodyTooLargeError, mediaType, readBody, writeJson, writeRaw, type JsonReply } from './http-io';
import { GOOGLE_ISSUER, signWithMode } from './id-token';
import { GOOGLE_RISC_ISSUER, signSecurityEventToken, type SecurityEventTokenOptions } from './security-event-token';
import { SigningKeyRing } from './signing-keys';
import { handleTokenRequest, type TokenEndpointContext } from './token-endpoint';
import type {
  FaultEndpoint,
  FaultSpec,
  LocalOAuthEndpoints,
  LocalOAuthServerOptions,
  MintCodeOptions,
  OAuthServerStats,
  SignatureMode,
  TestUser,
} from './types';

// Google's own paths, so a URL in a log line reads the same locally and in production.
const PATHS = {
  token: '/token',
  revoke: '/revoke',
  pemCerts: '/oauth2/v1/certs',
  jwks: '/oauth2/v3/certs',
  tokenInfo: '/tokeninfo',
  // Ours: Google serves its RISC keys at a jwks_uri of its own choosing.
  riscJwks: '/risc/jwks',
} as const;

// OAuth forms and control requests are tiny; anything larger is a client bug.
const BODY_LIMIT_BYTES = 64 * 1024;
const FORM = 'application/x-www-form-urlencoded';

function zeroStats(): OAuthServerStats {
  return { token: 0, authorizationCode: 0, refreshToken: 0, certs: 0, revoke: 0, revokeTokenInQuery: 0, tokenInfo: 0 };
}

function requireAtLeast(name: string, value: number | undefined, fallback: number, min: number): number {
  const resolved = value ?? fallback;
  if (!Number.isFinite(resolved) || resolved < min) {
    throw new RangeError(`${name} must be a number >= ${min}, got ${String(value)}`);
  }
  return resolved;
}

const METHOD_NOT_ALLOWED: JsonReply = { status: 405, body: { error: 'method_not_allowed' } };

/**
 * A stand-in for Google's OAuth endpoints on 127.0.0.1, for tests and the local dev
 * stack. Point google-auth-library at it through {@link endpoints} and {@link issuer};
 * drive users, consent, revocation, key rotation and failures through its methods
 * (or, from another process, its `/_control/` API).
 */
export class LocalOAuthServer implements ControlTarget {
  /** Base URL, `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** Absolute URLs of the Google-like endpoints. */
  readonly endpoints: LocalOAuthEndpoints;
  /** The `iss` of every ID token this server mints unless tweaked. */
  readonly issuer: string = GOOGLE_ISSUER;
  /** The `iss` of every Security Event Token this server signs unless told otherwise. */
  readonly riscIssuer: string = GOOGLE_RISC_ISSUER;

  private readonly registry = new GrantRegistry();
  private readonly keys = new SigningKeyRing();
  // Security Event Tokens have a key set of their own, as Google's RISC configuration names one.
  private readonly riscKeys = new SigningKeyRing();
  private readonly faults = new FaultQueue();
  private readonly tokenContext: TokenEndpointContext;
  private readonly pendingDelays = new Set<NodeJS.Timeout>();
  private readonly now: () => number;
  private readonly codeTtlSeconds: number;
  private readonly certsMaxAgeSeconds: number;
  private readonly defaultAzp: string;
  private counters: OAuthServerStats = zeroStats();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly server: Server,
    port: number,
    options: LocalOAuthServerOptions,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    this.endpoints = {
      tokenUrl: this.url + PATHS.token,
      revokeUrl: this.url + PATHS.revoke,
      pemCertsUrl: this.url + PATHS.pemCerts,
      jwksUrl: this.url + PATHS.jwks,
      tokenInfoUrl: this.url + PATHS.tokenInfo,
      riscJwksUrl: this.url + PATHS.riscJwks,
    };
    this.now = options.now ?? Date.now;
    this.codeTtlSeconds = requireAtLeast('codeTtlSeconds', options.codeTtlSeconds, 600, 1);
    // Zero is allowed: google-auth-library then refetches certs on every verification,
    // which is what a test of key rotation wants.
    this.certsMaxAgeSeconds = requireAtLeast('certsMaxAgeSeconds', options.certsMaxAgeSeconds, 300, 0);
    this.defaultAzp = options.appClientIds?.[0] ?? options.clientId;
    this.tokenContext = {
      clientId: options.clientId,
      clientSecret: options.clientSecret,
      issuer: this.issuer,
      accessTokenTtlSeconds: requireAtLeast('accessTokenTtlSeconds', options.accessTokenTtlSeconds, 3600, 1),
      now: this.now,
      registry: this.registry,
      keys: this.keys,
    };
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.handle(req, res));
  }

  /** Starts a server on 127.0.0.1 with an ephemeral port. */
  static async start(options: LocalOAuthServerOptions): Promise<LocalOAuthServer> {
    if (options.clientId === '' || options.clientSecret === '') {
      throw new RangeError('clientId and clientSecret must be non-empty');
    }
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const port = (server.address() as AddressInfo).port;
    try {
      return new LocalOAuthServer(server, port, options);
    } catch (err: unknown) {
      server.close();
      throw err;
    }
  }

  /**
   * Mints a one-time authorization code, as if `user` had just signed in through an
   * app that asked for `options.scopes` with this server's client ID as server client.
   * `user` also becomes the account's current profile, so ID tokens from later refreshes
   * of older grants carry it too.
   */
  mintCode(user: TestUser, options: MintCodeOptions): string {
    if (options.scopes.length === 0) {
      throw new RangeError('a code needs at least one scope');
    }
    const ttlSeconds = options.ttlSeconds ?? this.codeTtlSeconds;
    if (!Number.isFinite(ttlSeconds)) {
      throw new RangeError(`ttlSeconds must be finite, got ${String(options.ttlSeconds)}`);
    }
    return this.registry.mintCode(user, {
      scopes: [...options.scopes],
      azp: options.appClientId ?? this.defaultAzp,
      redirectUri: options.redirectUri ?? '',
      expiresAtMs: this.now() + ttlSeconds * 1000,
      consent: options.consent ?? false,
      idToken: { ...options.idToken },
    });
  }

  /** Revokes every grant of the user, as the user would from their Google account. */
  revokeUser(sub: string): void {
    this.registry.revokeUser(sub);
  }

  /** Makes the user's next refresh return a new refresh token and kill the old one. */
  rotateRefreshTokenOnNextRefresh(sub: string): void {
    this.registry.armRotation(sub);
  }

  /**
   * Makes a new key current; the previous one stays published, as Google keeps two.
   * `modulusBits` (default 2048, as Google's) makes a smaller key for load that only needs
   * sign-ins to be cheap: a 2048-bit RSA signature costs about 0.28 ms of CPU here, a 1024-bit one 0.08 ms.
   */
  rotateSigningKeys(modulusBits?: number): void {
    this.keys.rotate(modulusBits);
  }

  /** Signs arbitrary claims exactly as given with the current key (or spoiled as `signature` asks). */
  signIdToken(claims: Record<string, unknown>, signature: SignatureMode = 'valid'): string {
    const token = signWithMode(claims, this.keys, signature);
    this.registry.remember(token);
    return token;
  }

  /**
   * Signs a Cross-Account Protection Security Event Token with the RISC key
   * published at `endpoints.riscJwksUrl` (or spoiled as `options.signature` asks).
   */
  signSecurityEvent(options: SecurityEventTokenOptions): string {
    return signSecurityEventToken(options, this.riscKeys, Math.floor(this.now() / 1000));
  }

  /** Makes a new RISC signing key current; the previous one stays published. */
  rotateRiscSigningKeys(): void {
    this.riscKeys.rotate();
  }

  /** Queues a failure for the next `fault.times` requests to its endpoint. */
  injectFault(fault: FaultSpec): void {
    this.faults.add(fault);
  }

  /** Drops every fault not yet applied. */
  clearFaults(): void {
    this.faults.clear();
  }

  /** Requests that reached each endpoint since start or the last {@link resetStats}. */
  stats(): OAuthServerStats {
    return { ...this.counters };
  }

  /** Zeroes the request counters. */
  resetStats(): void {
    this.counters = zeroStats();
  }

  /** Every code, access token, refresh token and ID token issued, so tests can search logs for leaks. */
  issuedSecrets(): string[] {
    return this.registry.issuedSecrets();
  }

  /** Stops listening and cuts every connection, including responses held by a delay fault. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve, reject) => {
      for (const timer of this.pendingDelays) {
        clearTimeout(timer);
      }
      this.pendingDelays.clear();
      this.faults.clear();
      this.server.close((err) => (err === undefined ? resolve() : reject(err)));
      // Clients keep connections alive; without this close() would wait for them to idle out.
      this.server.closeAllConnections();
    });
    return this.closing;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.route(req, res).catch((err: unknown) => {
      if (err instanceof BodyTooLargeError) {
        writeJson(res, { status: 413, body: { error: 'invalid_request', error_description: err.message } });
        return;
      }
      const description = err instanceof Error ? err.message : 'unexpected failure';
      writeJson(res, { status: 500, body: { error: 'internal_failure', error_description: description } });
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const method = req.method ?? 'GET';
    switch (url.pathname) {
      case PATHS.token:
        return this.token(req, res, method);
      case PATHS.pemCerts:
      case PATHS.jwks:
        return this.certs(res, method, url.pathname === PATHS.jwks);
      case PATHS.revoke:
        return this.revoke(req, res, method, url);
      case PATHS.tokenInfo:
        return this.tokenInfo(req, res, url);
      case PATHS.riscJwks:
        if (method !== 'GET' && method !== 'HEAD') return writeJson(res, METHOD_NOT_ALLOWED);
        return writeJson(res, { status: 200, body: this.riscKeys.jwks(), headers: { 'cache-control': `public, max-age=${this.certsMaxAgeSeconds}` } });
    }
    if (url.pathname.startsWith(CONTROL_PREFIX)) {
      const body = method === 'POST' ? await readBody(req, BODY_LIMIT_BYTES) : '';
      writeJson(res, handleControlRequest(this, method, url.pathname, body));
      return;
    }
    writeJson(res, { status: 404, body: { error: 'not_found' } });
  }

  private async token(req: IncomingMessage, res: ServerResponse, method: string): Promise<void> {
    this.counters.token += 1;
    const body = await readBody(req, BODY_LIMIT_BYTES);
    const params = mediaType(req) === FORM ? new URLSearchParams(body) : undefined;
    const grantType = params?.get('grant_type');
    if (grantType === 'authorization_code') {
      this.counters.authorizationCode += 1;
    } else if (grantType === 'refresh_token') {
      this.counters.refreshToken += 1;
    }
    await this.reply(res, 'token', () => {
      if (method !== 'POST') {
        return METHOD_NOT_ALLOWED;
      }
      if (params === undefined) {
        return { status: 400, body: { error: 'invalid_request', error_description: `Content-Type must be ${FORM}` } };
      }
      return handleTokenRequest(this.tokenContext, params, req.headers.authorization);
    });
  }

  private async certs(res: ServerResponse, method: string, jwks: boolean): Promise<void> {
    this.counters.certs += 1;
    await this.reply(res, 'certs', () => {
      if (method !== 'GET' && method !== 'HEAD') {
        return METHOD_NOT_ALLOWED;
      }
      return {
        status: 200,
        body: jwks ? this.keys.jwks() : this.keys.pemCerts(),
        headers: { 'cache-control': `public, max-age=${this.certsMaxAgeSeconds}` },
      };
    });
  }

  private async revoke(req: IncomingMessage, res: ServerResponse, method: string, url: URL): Promise<void> {
    this.counters.revoke += 1;
    const body = await readBody(req, BODY_LIMIT_BYTES);
    const fromBody = mediaType(req) === FORM ? new URLSearchParams(body).get('token') : null;
    const fromQuery = url.searchParams.get('token');
    if (fromBody === null && fromQuery !== null) {
      this.counters.revokeTokenInQuery += 1;
    }
    const token = fromBody ?? fromQuery;
    await this.reply(res, 'revoke', () => {
      if (method !== 'POST') {
        return METHOD_NOT_ALLOWED;
      }
      if (token === null || token === '') {
        return { status: 400, body: { error: 'invalid_request', error_description: 'Missing required parameter: token' } };
      }
      if (!this.registry.revokeByToken(token)) {
        return { status: 400, body: { error: 'invalid_token', error_description: 'Token expired or revoked' } };
      }
      return { status: 200, body: {} };
    });
  }

  // google-auth-library's getTokenInfo sends the token as a Bearer header; Google
  // also takes it as an access_token parameter, so both work here.
  private async tokenInfo(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    this.counters.tokenInfo += 1;
    const body = await readBody(req, BODY_LIMIT_BYTES);
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const fromForm = mediaType(req) === FORM ? new URLSearchParams(body).get('access_token') : null;
    const token = bearer ?? fromForm ?? url.searchParams.get('access_token');
    const nowMs = this.now();
    const record = token === null ? undefined : this.registry.accessTokenInfo(token, nowMs);
    if (record === undefined) {
      writeJson(res, { status: 400, body: { error: 'invalid_token', error_description: 'Invalid Value' } });
      return;
    }
    const info: Record<string, string> = {
      azp: this.tokenContext.clientId,
      aud: this.tokenContext.clientId,
      sub: record.grant.sub,
      scope: record.scopes.join(' '),
      // Google sends these numbers as strings.
      exp: String(Math.floor(record.expiresAtMs / 1000)),
      expires_in: String(Math.max(0, Math.floor((record.expiresAtMs - nowMs) / 1000))),
      access_type: record.grant.refreshToken === undefined ? 'online' : 'offline',
    };
    if (record.scopes.some((scope) => scope === 'email' || scope.endsWith('/auth/userinfo.email'))) {
      const user = this.registry.profile(record.grant.sub);
      info['email'] = user.email;
      info['email_verified'] = String(user.emailVerified ?? true);
    }
    writeJson(res, { status: 200, body: info });
  }

  /**
   * Applies the fault due on `endpoint`, if any, around the real answer. A status or
   * malformed fault replaces the answer without touching state, like a failure in
   * front of Google. A delay fault lets the request take effect and holds only the
   * response, because a client that gives up on a slow Google may still have
   * consumed its code or rotated its refresh token. A reset fault likewise lets the
   * request take effect and then drops the connection unanswered; a missing-fields
   * fault lets it take effect and answers with the named fields left out.
   */
  private async reply(res: ServerResponse, endpoint: FaultEndpoint, answer: () => JsonReply): Promise<void> {
    const fault = this.faults.take(endpoint);
    if (fault?.kind === 'status') {
      const headers: Record<string, string> =
        fault.retryAfterSeconds === undefined ? {} : { 'retry-after': String(fault.retryAfterSeconds) };
      const error = errorCodeForStatus(fault.status);
      writeJson(res, { status: fault.status, body: { error, error_description: 'Injected fault' }, headers });
      return;
    }
    if (fault?.kind === 'malformed') {
      writeRaw(res, 200, 'application/json; charset=utf-8', MALFORMED_BODY);
      return;
    }
    const reply = answer();
    if (fault?.kind === 'reset') {
      res.destroy();
      return;
    }
    if (fault?.kind === 'missing-fields') {
      writeJson(res, { ...reply, body: withoutFields(reply.body, fault.fields) });
      return;
    }
    if (fault?.kind === 'delay') {
      await this.sleep(fault.ms);
    }
    writeJson(res, reply);
  }

  // close() clears these timers; the awaiting handler then never resumes and is
  // collected with its already-destroyed response.
  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.pendingDelays.delete(timer);
        resolve();
      }, ms);
      this.pendingDelays.add(timer);
    });
  }
}
