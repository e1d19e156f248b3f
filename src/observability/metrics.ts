/**
 * What the service counts, as plain method calls. The domain, the adapters
 * and the transport record through this interface; how it is exported
 * (Prometheus, see prometheus-metrics.ts) is the composition root's choice.
 *
 * Every label is a value from a closed set named here: never a user ID, a
 * caller identity, a scope, a token or free text from outside.
 */
export interface Metrics {
  /** One answered RPC: `method` as the API names it, `code` the gRPC status name (OK, PERMISSION_DENIED, ...). */
  rpcHandled(method: string, code: string, seconds: number): void;
  /** One request to (or refused before) one of Google's OAuth endpoints. `seconds` is ignored for breaker_open. */
  upstreamRequest(endpoint: UpstreamEndpoint, outcome: UpstreamOutcome, seconds: number): void;
  /** A circuit breaker opened (true) or closed again (false). */
  upstreamBreakerOpen(endpoint: UpstreamEndpoint, open: boolean): void;
  /** A lookup in one of the in-memory caches. */
  cacheLookup(cache: CacheName, hit: boolean): void;
  /** One refresh at Google from a stored refresh token. */
  refresh(outcome: RefreshOutcomeLabel): void;
  /** A call that got its token from a refresh someone else made: this process's (local) or another replica's (shared). */
  refreshJoined(scope: RefreshJoinScope): void;
  /** A grant this process marked REAUTH_REQUIRED. */
  grantMarkedDead(reason: DeadReasonLabel): void;
  /** A Firestore operation that failed or ran out of time (STORE_UNAVAILABLE). */
  firestoreError(operation: FirestoreOperation): void;
  /**
   * One Firestore operation, whatever its outcome: `seconds` from the call
   * into the client library to its answer, its failure or our deadline
   * (the library's own work on the event loop included).
   */
  firestoreCall(operation: FirestoreOperation, seconds: number): void;
}

/** Google endpoints the broker calls. */
export type UpstreamEndpoint = 'token' | 'revoke' | 'certs';

/** How one upstream request ended; see the README's Observability section. */
export type UpstreamOutcome =
  | 'ok'
  | 'invalid_grant'
  | 'client_error'
  | 'rate_limited'
  | 'server_error'
  | 'bad_response'
  | 'timeout'
  | 'network'
  | 'breaker_open';

/** Every {@link UpstreamOutcome}, in the order series are created. */
export const UPSTREAM_OUTCOMES: readonly UpstreamOutcome[] = [
  'ok',
  'invalid_grant',
  'client_error',
  'rate_limited',
  'server_error',
  'bad_response',
  'timeout',
  'network',
  'breaker_open',
];

/** Every {@link UpstreamEndpoint}. */
export const UPSTREAM_ENDPOINTS: readonly UpstreamEndpoint[] = ['token', 'revoke', 'certs'];

/** The caches: access tokens in memory, profiles in memory, and access tokens other replicas shared in Firestore. */
export type CacheName = 'access_token' | 'profile' | 'shared_token';

/** Every {@link CacheName}. */
export const CACHE_NAMES: readonly CacheName[] = ['access_token', 'profile', 'shared_token'];

/** ok: a token came back; invalid_grant: Google no longer accepts the grant; failed: anything else. */
export type RefreshOutcomeLabel = 'ok' | 'invalid_grant' | 'failed';

/** Every {@link RefreshOutcomeLabel}. */
export const REFRESH_OUTCOMES: readonly RefreshOutcomeLabel[] = ['ok', 'invalid_grant', 'failed'];

/** local: joined this process's flight for the same user and scopes; shared: waited for another replica's refresh. */
export type RefreshJoinScope = 'local' | 'shared';

/** Every {@link RefreshJoinScope}. */
export const REFRESH_JOIN_SCOPES: readonly RefreshJoinScope[] = ['local', 'shared'];

/**
 * Why a grant was marked dead: Google's `invalid_grant`, its `invalid_rapt`
 * subtype (session control policy), a Cross-Account Protection event, or
 * another answer Google may add later (`other`).
 */
export type DeadReasonLabel = 'invalid_grant' | 'invalid_rapt' | 'security_event' | 'other';

/** Every {@link DeadReasonLabel}. */
export const DEAD_REASONS: readonly DeadReasonLabel[] = ['invalid_grant', 'invalid_rapt', 'security_event', 'other'];

/** The label of Google's dead reason (`error_subtype`, else `error`): known ones as they are, anything else `other`. */
export function deadReasonLabel(reason: string): DeadReasonLabel {
  return reason === 'invalid_grant' || reason === 'invalid_rapt' ? reason : 'other';
}

/** The Firestore operations the adapters run, by collection and kind. */
export const FIRESTORE_OPERATIONS = [
  'grant_get',
  'grant_update',
  'grant_list',
  'grant_delete',
  'shared_token_get',
  'shared_token_update',
  'shared_token_delete',
  'exchange_claim',
  'exchange_complete',
  'exchange_release',
  'exchange_get',
  'revocation_record',
  'revocation_pending',
  'revocation_settle',
  'revocation_announce_drop',
  'grant_find_by_hash',
  'security_event_seen',
  'security_event_record',
  'other',
] as const;

/** One of {@link FIRESTORE_OPERATIONS}. */
export type FirestoreOperation = (typeof FIRESTORE_OPERATIONS)[number];

/** Records nothing: for jobs, tests of single components, and any deployment without metrics. */
export const NO_METRICS: Metrics = {
  rpcHandled: () => undefined,
  upstreamRequest: () => undefined,
  upstreamBreakerOpen: () => undefined,
  cacheLookup: () => undefined,
  refresh: () => undefined,
  refreshJoined: () => undefined,
  grantMarkedDead: () => undefined,
  firestoreError: () => undefined,
  firestoreCall: () => undefined,
};
