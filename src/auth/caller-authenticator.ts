/** What a call presents to prove who is calling, as the transport found it. */
export interface CallerCredentials {
  /** The `authorization` metadata value, if any. */
  authorization?: string;
  /** The verified client certificate's subjectAltName line, when the call came over mutual TLS. */
  peerSubjectAltName?: string;
  /** The `x-forwarded-client-cert` metadata value a mesh sidecar set, if any. */
  forwardedClientCert?: string;
}

/**
 * Turns a call's credentials into the caller's identity (a service-account
 * email or a certificate SAN), or throws BrokerError UNAUTHENTICATED. Its
 * messages never quote the credential.
 */
export interface CallerAuthenticator {
  /** Short name of the method, for logs (`google-id-token`, `mtls`, `mesh-xfcc`). */
  readonly method: string;
  authenticate(credentials: CallerCredentials): Promise<string>;
  /**
   * The identity {@link authenticate} would resolve with, when it is known
   * without any I/O (a credential verified before, or one checked by
   * parsing alone); undefined otherwise, including for bad credentials.
   */
  knownIdentity(credentials: CallerCredentials): string | undefined;
}
