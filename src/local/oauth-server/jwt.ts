import { sign } from 'node:crypto';
import type { SigningKey } from './signing-keys';

/** `value` as JSON, base64url-encoded: one JWT segment. */
export function base64UrlJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

/** Signs `claims` as a compact RS256 JWT whose header names the key by `kid`. */
export function signRs256(claims: Record<string, unknown>, key: SigningKey): string {
  const signingInput = `${base64UrlJson({ alg: 'RS256', kid: key.kid, typ: 'JWT' })}.${base64UrlJson(claims)}`;
  const signature = sign('sha256', Buffer.from(signingInput, 'ascii'), key.privateKey);
  return `${signingInput}.${signature.toString('base64url')}`;
}

/**
 * Returns `jwt` with one signature byte flipped. The header and payload stay intact
 * so only signature checking can catch it, not parsing or claim checks.
 */
export function tamperSignature(jwt: string): string {
  const lastDot = jwt.lastIndexOf('.');
  const signature = Buffer.from(jwt.slice(lastDot + 1), 'base64url');
  const middle = Math.floor(signature.length / 2);
  signature[middle] = (signature[middle] ?? 0) ^ 0x01;
  return `${jwt.slice(0, lastDot + 1)}${signature.toString('base64url')}`;
}
