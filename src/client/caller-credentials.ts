import { credentials as grpcCredentials, type ChannelCredentials } from '@grpc/grpc-js';
import { GoogleAuth } from 'google-auth-library';

/**
 * The part of google-auth-library's `GoogleAuth` that {@link googleIdTokenSource}
 * uses; tests pass a stand-in.
 */
export interface IdTokenClientFactory {
  getIdTokenClient(audience: string): Promise<{ getRequestHeaders(): Promise<Headers> }>;
}

/**
 * An `idToken` option for {@link TokenBrokerClient}: Google ID tokens for
 * `audience` (the broker's `TOKENBROKER_CALLER_AUDIENCE`), minted for the
 * workload's own service account by google-auth-library (the metadata server
 * on Cloud Run, GKE with Workload Identity and GCE; a service account key
 * from Application Default Credentials elsewhere). The library reuses a token
 * until shortly before it expires, so calling the source per RPC is cheap.
 * Failures (no credentials found, metadata server unreachable) reject the
 * call that asked; the next call tries again.
 */
export function googleIdTokenSource(
  audience: string,
  auth: IdTokenClientFactory = new GoogleAuth(),
): () => Promise<string> {
  let client: ReturnType<IdTokenClientFactory['getIdTokenClient']> | undefined;
  return async () => {
    client ??= auth.getIdTokenClient(audience);
    let headers: Headers;
    try {
      headers = await (await client).getRequestHeaders();
    } catch (err: unknown) {
      client = undefined;
      throw err;
    }
    const token = (headers.get('authorization') ?? '').replace(/^Bearer\s+/i, '');
    if (token === '') throw new Error('google-auth-library returned no ID token');
    return token;
  };
}

/** PEM material of a client that authenticates to the broker by mutual TLS. */
export interface MutualTlsMaterial {
  /** CA certificate(s) the broker's server certificate must chain to; default: the system's roots. */
  ca?: Buffer;
  /** The client certificate chain; its first URI SAN (SPIFFE ID) or DNS SAN is the caller's identity. */
  cert: Buffer;
  /** The client certificate's private key. */
  key: Buffer;
}

/**
 * The `credentials` option of {@link TokenBrokerClient} (and of `checkHealth`)
 * for a broker running with `TOKENBROKER_CALLER_AUTH=mtls`: TLS that trusts
 * `ca` and presents the client certificate. Not needed in a mesh, where the
 * sidecar does mTLS and the client speaks plaintext to it.
 */
export function mutualTlsCredentials(material: MutualTlsMaterial): ChannelCredentials {
  return grpcCredentials.createSsl(material.ca ?? null, material.key, material.cert);
}
