import { createHmac, randomUUID } from 'node:crypto';
import { signWithMode } from './id-token';
import { base64UrlJson } from './jwt';
import type { SigningKey, SigningKeyRing } from './signing-keys';

/** The `iss` of Google's Security Event Tokens, as its RISC configuration names it. */
export const GOOGLE_RISC_ISSUER = 'https://accounts.google.com/';

/**
 * How a Security Event Token is signed: `valid` with the current RISC key;
 * `tampered` with one signature byte flipped; `unknown-kid` with a key the
 * RISC key set does not publish; `alg-none` unsigned; `hs256-public-key`
 * as HS256 with the published public key (PEM) as the HMAC secret, the
 * algorithm-confusion attack a verifier that trusts `alg` falls for.
 */
export type SecurityEventSignature = 'valid' | 'tampered' | 'unknown-kid' | 'alg-none' | 'hs256-public-key';

/** What {@link LocalOAuthServer.signSecurityEvent} puts in a token. */
export interface SecurityEventTokenOptions {
  /** The OAuth client ID the event is for (`aud`). */
  aud: string | string[];
  /** The `events` claim: event type URI -> event object. */
  events: Record<string, unknown>;
  /** Default: a random UUID. */
  jti?: string;
  /** Seconds since the epoch; default: now. */
  iat?: number;
  /** Default: {@link GOOGLE_RISC_ISSUER}. */
  iss?: string;
  /** Default: `valid`. */
  signature?: SecurityEventSignature;
}

/** Signs a Security Event Token the way Google's Cross-Account Protection does (or spoiled as asked). */
export function signSecurityEventToken(options: SecurityEventTokenOptions, keys: SigningKeyRing, nowSeconds: number): string {
  const claims = {
    iss: options.iss ?? GOOGLE_RISC_ISSUER,
    aud: options.aud,
    iat: options.iat ?? nowSeconds,
    jti: options.jti ?? randomUUID().replace(/-/g, ''),
    events: options.events,
  };
  const signature = options.signature ?? 'valid';
  if (signature === 'alg-none') return `${base64UrlJson({ alg: 'none', typ: 'secevent+jwt' })}.${base64UrlJson(claims)}.`;
  if (signature === 'hs256-public-key') return signHs256WithPublicKey(claims, keys.current());
  return signWithMode(claims, keys, signature);
}

function signHs256WithPublicKey(claims: Record<string, unknown>, key: SigningKey): string {
  const input = `${base64UrlJson({ alg: 'HS256', kid: key.kid, typ: 'secevent+jwt' })}.${base64UrlJson(claims)}`;
  const secret = key.publicKey.export({ type: 'spki', format: 'pem' });
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}
