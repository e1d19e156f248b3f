import { BrokerError } from '../domain/broker-error';
import type { Clock } from '../domain/clock';
import type { CallerAuthenticator, CallerCredentials } from './caller-authenticator';

/** What a verified caller ID token says, as far as authentication needs. */
export interface VerifiedCallerToken {
  /** The service account's email: the caller identity. */
  email: string;
  emailVerified: boolean;
  /** Expiry, ms since the epoch. */
  expiresAt: number;
}

/**
 * Checks a caller's Google-signed ID token: signature against Google's
 * certs, issuer, our audience, expiry. Throws BrokerError UNAUTHENTICATED
 * naming only which check failed.
 */
export interface CallerTokenVerifier {
  verify(token: string): Promise<VerifiedCallerToken>;
}

/** Tunables of {@link BearerTokenAuthenticator}. */
export interface BearerTokenAuthenticatorOptions {
  /** Most verified tokens remembered (each a hash, an identity and an expiry). */
  maxCached: number;
  clock: Clock;
}

/** Longest bearer credential read; Google ID tokens are about 1 KB. */
const MAX_TOKEN_LENGTH = 8192;
const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/;

/**
 * Google-signed ID tokens as caller credentials (Cloud Run and any GCP
 * workload): `authorization: Bearer <ID token>` minted for the caller's
 * service account with our audience. The identity is the token's verified
 * email. A verified token is remembered until it expires, so a caller
 * reusing its token (they live an hour) costs one map lookup per call.
 */
export class BearerTokenAuthenticator implements CallerAuthenticator {
  readonly method = 'google-id-token';
  /**
   * The authorization header of a verified token -> who it proved and until
   * when; Map order is insertion order. Keyed by the header itself: a map
   * lookup hashes it far cheaper than SHA-256, and only verified headers
   * are kept (the process holds each caller's token in memory either way).
   */
  private readonly verified = new Map<string, VerifiedHeader>();
  /**
   * The headers verified last, checked by plain comparison before the map:
   * each call brings a new copy of its ~1 KB header, and a map lookup must
   * hash all of it, while comparing with a different token stops at the
   * first differing byte. A few callers make most calls.
   */
  private readonly recent: VerifiedHeader[] = [];

  constructor(
    private readonly verifier: CallerTokenVerifier,
    private readonly options: BearerTokenAuthenticatorOptions,
  ) {}

  knownIdentity(credentials: CallerCredentials): string | undefined {
    const header = credentials.authorization;
    if (header === undefined) return undefined;
    const known = this.lookUp(header);
    return known !== undefined && known.expiresAt > this.options.clock.now() ? known.identity : undefined;
  }

  private lookUp(header: string): VerifiedHeader | undefined {
    for (const entry of this.recent) if (entry.header === header) return entry;
    const known = this.verified.get(header);
    if (known) {
      if (this.recent.length >= RECENT_HEADERS) this.recent.pop();
      this.recent.unshift(known);
    }
    return known;
  }

  async authenticate(credentials: CallerCredentials): Promise<string> {
    const header = credentials.authorization;
    if (header === undefined) throw unauthenticated('the call carried no credential: send authorization: Bearer <Google ID token>');
    const now = this.options.clock.now();
    const known = this.lookUp(header);
    if (known && known.expiresAt > now) return known.identity;
    if (known) this.forget(known);
    const token = header.length <= MAX_TOKEN_LENGTH ? BEARER.exec(header)?.[1] : undefined;
    if (!token) throw unauthenticated('the authorization header is not a bearer JWT');

    const claims = await this.verifier.verify(token);
    if (!claims.email || !claims.emailVerified) throw unauthenticated('the ID token has no verified email: mint it for a service account');
    if (this.verified.size >= this.options.maxCached) {
      const oldest = this.verified.values().next();
      if (!oldest.done) this.forget(oldest.value);
    }
    this.verified.set(header, { header, identity: claims.email, expiresAt: claims.expiresAt });
    return claims.email;
  }

  private forget(entry: VerifiedHeader): void {
    this.verified.delete(entry.header);
    const i = this.recent.indexOf(entry);
    if (i >= 0) this.recent.splice(i, 1);
  }
}

/** A verified authorization header: who it proved, until when (ms since the epoch). */
interface VerifiedHeader {
  header: string;
  identity: string;
  expiresAt: number;
}

/** Headers compared before the map lookup. */
const RECENT_HEADERS = 4;

function unauthenticated(message: string): BrokerError {
  return new BrokerError('UNAUTHENTICATED', message);
}
