import { verify, type KeyObject } from 'node:crypto';
import type { Clock } from '../../domain/clock';
import { sameIssuer, type VerifiedSecurityEventToken } from '../../domain/security-events';

/**
 * Why a Security Event Token was refused: the error codes of RFC 8935
 * (push delivery), sent back as `{"err": code, "description": ...}`.
 */
export type SetErrorCode = 'invalid_request' | 'invalid_key' | 'authentication_failed' | 'invalid_issuer' | 'invalid_audience';

/** The token is not a valid SET for us. Its message is short, fixed text: never the token or a claim value. */
export class SetRejectedError extends Error {
  override readonly name = 'SetRejectedError';

  constructor(
    readonly code: SetErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Where verification keys come from (RiscSigningKeys). */
export interface SetKeySource {
  key(kid: string): Promise<KeyObject | undefined>;
}

/** Options of {@link SecurityEventTokenVerifier}. */
export interface SetVerifierOptions {
  /** The `iss` Google's tokens carry (trailing slashes ignored). */
  issuer: string;
  /** Our OAuth client IDs; `aud` must name one of them. */
  audiences: readonly string[];
  /** How far in the future `iat` may be (clock skew). */
  maxFutureSkewMs: number;
  clock: Clock;
}

const MAX_TOKEN_CHARS = 16_384;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/**
 * Verifies a Security Event Token as Google's Cross-Account Protection
 * sends it: a compact JWS whose header must say RS256 (never `none` or an
 * HMAC: the algorithm is fixed here, not taken from the token), signed by a
 * key of the RISC key set named by `kid`; then `iss`, `aud` (one of our
 * client IDs), `iat` (present, not in the future beyond the skew), `jti`
 * and `events`. SETs carry no `exp`: an event is a fact about the past.
 * Claims are read only after the signature holds.
 */
export class SecurityEventTokenVerifier {
  constructor(
    private readonly keys: SetKeySource,
    private readonly options: SetVerifierOptions,
  ) {
    if (options.audiences.length === 0) throw new RangeError('SecurityEventTokenVerifier: at least one audience is required');
  }

  /** Throws SetRejectedError for a bad token, RiscKeysUnavailableError when the keys cannot be read. */
  async verify(compact: string): Promise<VerifiedSecurityEventToken> {
    const text = compact.trim();
    if (text.length === 0 || text.length > MAX_TOKEN_CHARS) throw new SetRejectedError('invalid_request', 'the body is not a security event token');
    const parts = text.split('.');
    if (parts.length !== 3) throw new SetRejectedError('invalid_request', 'the token is not a compact JWS');
    const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
    const header = decodeJson(headerPart, 'header');
    if (header.alg !== 'RS256') throw new SetRejectedError('invalid_request', 'the token must be signed with RS256');
    if (header.crit !== undefined) throw new SetRejectedError('invalid_request', 'the token has critical header parameters');
    if (typeof header.kid !== 'string' || header.kid === '') throw new SetRejectedError('invalid_key', 'the token names no signing key');
    if (!BASE64URL.test(payloadPart) || !BASE64URL.test(signaturePart)) throw new SetRejectedError('invalid_request', 'the token is not a compact JWS');

    const key = await this.keys.key(header.kid);
    if (!key) throw new SetRejectedError('invalid_key', 'the token is signed with an unknown key');
    const signed = verify('sha256', Buffer.from(`${headerPart}.${payloadPart}`, 'ascii'), key, Buffer.from(signaturePart, 'base64url'));
    if (!signed) throw new SetRejectedError('authentication_failed', 'the token signature is invalid');

    const claims = decodeJson(payloadPart, 'payload');
    if (typeof claims.iss !== 'string' || !sameIssuer(claims.iss, this.options.issuer)) {
      throw new SetRejectedError('invalid_issuer', 'the token issuer is not the configured one');
    }
    const audiences = typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud : [];
    if (!audiences.some((aud) => typeof aud === 'string' && this.options.audiences.includes(aud))) {
      throw new SetRejectedError('invalid_audience', 'the token is not for one of our client IDs');
    }
    const iat = claims.iat;
    if (typeof iat !== 'number' || !Number.isFinite(iat) || iat <= 0) throw new SetRejectedError('invalid_request', 'the token has no valid iat');
    if (iat * 1000 > this.options.clock.now() + this.options.maxFutureSkewMs) throw new SetRejectedError('invalid_request', 'the token is issued in the future');
    const jti = claims.jti;
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) throw new SetRejectedError('invalid_request', 'the token has no valid jti');
    const events = claims.events;
    if (typeof events !== 'object' || events === null || Array.isArray(events) || Object.keys(events).length === 0) {
      throw new SetRejectedError('invalid_request', 'the token has no events');
    }
    return { jti, issuedAt: Math.floor(iat) * 1000, events: events as Record<string, unknown> };
  }
}

function decodeJson(part: string, what: string): Record<string, unknown> {
  if (!BASE64URL.test(part)) throw new SetRejectedError('invalid_request', `the token ${what} is not base64url`);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw new SetRejectedError('invalid_request', `the token ${what} is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new SetRejectedError('invalid_request', `the token ${what} is not a JSON object`);
  return value as Record<string, unknown>;
}
