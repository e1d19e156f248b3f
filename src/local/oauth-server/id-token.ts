import { signRs256, tamperSignature } from './jwt';
import type { SigningKeyRing } from './signing-keys';
import type { SignatureMode, TestUser } from './types';

/** The issuer Google puts in ID tokens it mints today. */
export const GOOGLE_ISSUER = 'https://accounts.google.com';

/** Google's ID tokens live one hour. */
export const ID_TOKEN_LIFETIME_SECONDS = 3600;

/** Everything about an ID token that is not the user. */
export interface IdTokenEnvelope {
  iss: string;
  aud: string;
  azp: string;
  nowSeconds: number;
  expiresInSeconds: number;
}

/**
 * Claims in the shape Google uses, with optional profile claims left out when the
 * user has no value, as Google omits them rather than sending nulls.
 */
export function idTokenClaims(user: TestUser, envelope: IdTokenEnvelope): Record<string, unknown> {
  const exp = envelope.nowSeconds + envelope.expiresInSeconds;
  // An expired token still has to look like one that was valid once, or a verifier
  // could reject it for iat > exp instead of for expiry, and the test would prove less.
  const iat = envelope.expiresInSeconds > 0 ? envelope.nowSeconds : exp - ID_TOKEN_LIFETIME_SECONDS;
  const claims: Record<string, unknown> = {
    iss: envelope.iss,
    azp: envelope.azp,
    aud: envelope.aud,
    sub: user.sub,
    email: user.email,
    email_verified: user.emailVerified ?? true,
  };
  if (user.hostedDomain !== undefined) {
    claims['hd'] = user.hostedDomain;
  }
  const optional: [string, string | undefined][] = [
    ['name', user.name],
    ['picture', user.picture],
    ['given_name', user.givenName],
    ['family_name', user.familyName],
    ['locale', user.locale],
  ];
  for (const [claim, value] of optional) {
    if (value !== undefined) {
      claims[claim] = value;
    }
  }
  claims['iat'] = iat;
  claims['exp'] = exp;
  return claims;
}

/** Signs `claims` with the current key, or spoils the result as `mode` asks. */
export function signWithMode(claims: Record<string, unknown>, keys: SigningKeyRing, mode: SignatureMode): string {
  switch (mode) {
    case 'valid':
      return signRs256(claims, keys.current());
    case 'tampered':
      return tamperSignature(signRs256(claims, keys.current()));
    case 'unknown-kid':
      return signRs256(claims, keys.unknown());
  }
}
