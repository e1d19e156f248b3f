/**
 * A local stand-in for Google's OAuth endpoints (token, revoke, certs, tokeninfo)
 * used by tests and the dev stack instead of Google.
 */
export { LocalOAuthServer } from './local-oauth-server';
export { GOOGLE_RISC_ISSUER, type SecurityEventSignature, type SecurityEventTokenOptions } from './security-event-token';
export type {
  FaultEndpoint,
  FaultSpec,
  IdTokenTweaks,
  LocalOAuthEndpoints,
  LocalOAuthServerOptions,
  MintCodeOptions,
  OAuthServerStats,
  SignatureMode,
  TestUser,
} from './types';
