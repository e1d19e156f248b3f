import { createHash } from 'node:crypto';
import type { SealedBox } from '../crypto/sealed-box';

/**
 * Identifies the refresh token a grant holds: changes whenever it is
 * replaced, rotated or re-sealed (the nonce is fresh each time). Access
 * tokens shared between replicas name it, so a token from a replaced grant
 * is never served for the new one.
 */
export function grantVersion(grant: GrantRecord): string {
  return grant.refreshToken.iv.toString('base64url');
}

/** The field name the refresh token is sealed for (part of its associated data). */
export const REFRESH_TOKEN_FIELD = 'refresh_token';

/**
 * How Google's Cross-Account Protection names a token in token-revoked
 * events (token_identifier_alg hash_base64_sha512_sha512): SHA-512 of the
 * SHA-512 digest of the token, base64. One-way; safe to store beside the grant.
 */
export function riscTokenHash(token: string): string {
  const inner = createHash('sha512').update(token, 'utf8').digest();
  return createHash('sha512').update(inner).digest('base64');
}

/** The user's identity as Google's ID token states it. */
export interface Profile {
  /** Google account ID (`sub`). */
  userId: string;
  email: string;
  emailVerified: boolean;
  name: string;
  pictureUrl: string;
  locale: string;
  givenName: string;
  familyName: string;
  /** Google Workspace domain (`hd`); empty for consumer accounts. */
  hostedDomain: string;
}

/** Whether a grant can still be refreshed. */
export type GrantStatus = 'ACTIVE' | 'REAUTH_REQUIRED';

/**
 * One user's stored grant: what the token store holds per user. The refresh
 * token is only ever present sealed.
 */
export interface GrantRecord {
  userId: string;
  profile: Profile;
  /** Scopes the refresh token covers, sorted. */
  scopes: string[];
  /** The refresh token, sealed for this user and field. */
  refreshToken: SealedBox;
  /** {@link riscTokenHash} of the refresh token, to match Cross-Account Protection events without opening anything. */
  refreshTokenHash?: string;
  status: GrantStatus;
  /** Why the grant died (Google's OAuth error code), when status is REAUTH_REQUIRED. */
  deadReason?: string;
  /**
   * When Google issued the ID token of the latest sign-in applied (ms since
   * the epoch): an older sign-in finishing late never overwrites a newer one.
   */
  signedInAt?: number;
  /** When an access token was last obtained from the grant at Google (ms since the epoch). */
  lastRefreshedAt?: number;
  /**
   * Cross-Account Protection events Google sent about this user since the
   * refresh token was stored, oldest first (see security-events.ts); a
   * sign-in that stores a new refresh token starts the list afresh.
   */
  securityEvents?: GrantSecurityEvent[];
  /** Milliseconds since the epoch. */
  createdAt: number;
  updatedAt: number;
}

/** One Cross-Account Protection event as the grant remembers it (never the token that carried it). */
export interface GrantSecurityEvent {
  /** Short event name, e.g. `sessions-revoked` (see SECURITY_EVENT_TYPES). */
  type: string;
  /** When Google issued the event (its `iat`, ms since the epoch). */
  eventTime: number;
  /** When this service received it (ms since the epoch). */
  receiveTime: number;
  /** Google's `reason`, when the event has one (account-disabled: `hijacking`, `bulk-account`). */
  reason?: string;
  /** The `jti` of the token that carried it, so applying it twice changes nothing. */
  jti: string;
}
