import { BrokerError } from '../domain/broker-error';
import type { CallerAuthenticator, CallerCredentials } from './caller-authenticator';

/**
 * Mutual TLS served by the broker itself: the TLS layer has already checked
 * the client certificate against the configured CA, so the identity is the
 * certificate's first URI SAN (a SPIFFE ID such as
 * spiffe://cluster.local/ns/NS/sa/SA) or, failing that, its first DNS SAN.
 * The subject's CN is never used: it is free text.
 */
export class CertificateAuthenticator implements CallerAuthenticator {
  readonly method = 'mtls';

  knownIdentity(credentials: CallerCredentials): string | undefined {
    return identityFromSubjectAltName(credentials.peerSubjectAltName);
  }

  authenticate(credentials: CallerCredentials): Promise<string> {
    const identity = this.knownIdentity(credentials);
    if (!identity) {
      return Promise.reject(new BrokerError('UNAUTHENTICATED', 'the call carried no client certificate with a URI or DNS subject alternative name'));
    }
    return Promise.resolve(identity);
  }
}

/** The first `URI:` entry of Node's subjectaltname line, else the first `DNS:` entry. */
export function identityFromSubjectAltName(line: string | undefined): string | undefined {
  if (!line) return undefined;
  const entries = line.split(', ').map((entry) => entry.trim());
  const pick = (prefix: string) => entries.find((e) => e.startsWith(prefix))?.slice(prefix.length);
  return pick('URI:') || pick('DNS:') || undefined;
}
