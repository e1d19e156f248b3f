import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';

/** An RSA key pair with the `kid` that names it in JWT headers and cert documents. */
export interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** A public key as one entry of a JWK set. */
export interface PublicJwk {
  kid: string;
  kty: string;
  alg: 'RS256';
  use: 'sig';
  n: string;
  e: string;
}

// Google publishes the current key and the one before it, so tokens signed just
// before a rotation keep verifying while caches catch up.
const PUBLISHED_KEY_COUNT = 2;

/** Google's ID-token keys are 2048-bit RSA. */
const DEFAULT_MODULUS_BITS = 2048;

function generateSigningKey(modulusLength = DEFAULT_MODULUS_BITS): SigningKey {
  if (!Number.isInteger(modulusLength) || modulusLength < 1024 || modulusLength > 8192) {
    throw new Error(`SigningKeyRing: an RSA modulus of 1024 to 8192 bits, got ${modulusLength}`);
  }
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength });
  return { kid: randomBytes(20).toString('hex'), privateKey, publicKey };
}

/**
 * The RSA keys that sign ID tokens: a short published history, newest first, plus
 * one key that is never published so tests can present a token whose `kid` no
 * verifier will find.
 */
export class SigningKeyRing {
  private published: SigningKey[] = [generateSigningKey()];
  // Generated on first use: RSA key generation is the slowest part of starting a
  // server, and most servers never sign with a bad key.
  private unpublished: SigningKey | undefined;

  /** The key new tokens are signed with. */
  current(): SigningKey {
    // The constructor seeds one key and rotate() only prepends, so index 0 always exists.
    return this.published[0] as SigningKey;
  }

  /** A key whose public half appears on no cert endpoint. */
  unknown(): SigningKey {
    this.unpublished ??= generateSigningKey();
    return this.unpublished;
  }

  /** Makes a fresh key (of `modulusLength` bits, 2048 unless given) current and drops keys beyond the published history. */
  rotate(modulusLength = DEFAULT_MODULUS_BITS): void {
    this.published = [generateSigningKey(modulusLength), ...this.published].slice(0, PUBLISHED_KEY_COUNT);
  }

  /** `{kid: PEM}` as served at /oauth2/v1/certs. SPKI PEM: Node's verifier accepts it like an X.509 certificate. */
  pemCerts(): Record<string, string> {
    const certs: Record<string, string> = {};
    for (const key of this.published) {
      certs[key.kid] = key.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    }
    return certs;
  }

  /** The JWK set served at /oauth2/v3/certs. */
  jwks(): { keys: PublicJwk[] } {
    return {
      keys: this.published.map((key) => {
        const jwk = key.publicKey.export({ format: 'jwk' });
        return { kid: key.kid, kty: jwk.kty ?? 'RSA', alg: 'RS256', use: 'sig', n: jwk.n ?? '', e: jwk.e ?? '' };
      }),
    };
  }
}
