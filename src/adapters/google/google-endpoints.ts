/** Where Google's OAuth lives; every field can be overridden in config. */
export interface GoogleEndpoints {
  tokenUrl: string;
  revokeUrl: string;
  /** ID-token signing keys in Google's PEM map format. */
  certsUrl: string;
  /** Accepted `iss` values of ID tokens. */
  issuers: readonly string[];
}

/** Google's production endpoints. */
export const GOOGLE_ENDPOINTS: GoogleEndpoints = {
  tokenUrl: 'https://oauth2.googleapis.com/token',
  revokeUrl: 'https://oauth2.googleapis.com/revoke',
  certsUrl: 'https://www.googleapis.com/oauth2/v1/certs',
  issuers: ['accounts.google.com', 'https://accounts.google.com'],
};
