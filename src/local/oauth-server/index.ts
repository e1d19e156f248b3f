/**
 * A local stand-in for Google's OAuth endpoints (token, revoke, certs, tokeninfo)
 * used by tests and the dev stack instead of Google.
 */
export { LocalOAuthServer } from './local-oauth-server';
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
