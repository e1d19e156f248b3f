import type { SealedBox } from '../crypto/sealed-box';

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
  status: GrantStatus;
  /** Why the grant died (Google's OAuth error code), when status is REAUTH_REQUIRED. */
  deadReason?: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
  updatedAt: number;
}
