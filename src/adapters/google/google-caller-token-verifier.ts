import type { Certificates, OAuth2Client } from 'google-auth-library';
import type { CallerTokenVerifier, VerifiedCallerToken } from '../../auth/bearer-token-authenticator';
import { BrokerError } from '../../domain/broker-error';
import type { GoogleCerts } from './google-certs';
import { checkIdToken } from './id-token-check';

/**
 * Verifies the Google-signed ID tokens other services present as callers:
 * RS256 signature against Google's certs (the same cache user ID tokens
 * use, refetched once on an unknown key ID), issuer, audience = the
 * broker's configured audience, iat/exp. google-auth-library does the
 * checks; its messages quote the token, so only the failed check's name is kept.
 */
export class GoogleCallerTokenVerifier implements CallerTokenVerifier {
  constructor(
    private readonly client: OAuth2Client,
    private readonly certs: GoogleCerts,
    private readonly audience: string,
    private readonly issuers: readonly string[],
  ) {}

  async verify(token: string): Promise<VerifiedCallerToken> {
    const checked = await checkIdToken(this.certs, (keys) => this.check(keys, token));
    if (!checked.ok) throw rejected(checked.failed);
    const payload = checked.value;
    if (!payload || typeof payload.exp !== 'number') throw rejected('no expiry');
    return { email: payload.email ?? '', emailVerified: payload.email_verified === true, expiresAt: payload.exp * 1000 };
  }

  private async check(certs: Certificates, token: string) {
    const ticket = await this.client.verifySignedJwtWithCertsAsync(token, certs, this.audience, [...this.issuers]);
    return ticket.getPayload();
  }
}

function rejected(kind: string): BrokerError {
  return new BrokerError('UNAUTHENTICATED', `the caller's ID token failed verification (${kind})`);
}
