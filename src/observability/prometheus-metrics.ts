import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { BucketHistogram, type HistogramSeries } from './bucket-histogram';
import {
  CACHE_NAMES,
  DEAD_REASONS,
  FIRESTORE_OPERATIONS,
  REFRESH_JOIN_SCOPES,
  REFRESH_OUTCOMES,
  UPSTREAM_ENDPOINTS,
  UPSTREAM_OUTCOMES,
  type CacheName,
  type DeadReasonLabel,
  type FirestoreOperation,
  type Metrics,
  type RefreshJoinScope,
  type RefreshOutcomeLabel,
  type UpstreamEndpoint,
  type UpstreamOutcome,
} from './metrics';
import { TalliedCounter, type Tally } from './tallied-counter';

/** RPC latency buckets (seconds): a cache hit takes well under a millisecond, a refresh tens to hundreds. */
const RPC_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Upstream latency buckets (seconds), up to the longest per-attempt timeout. */
const UPSTREAM_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Firestore latency buckets (seconds): a few milliseconds in the same region, up to the store timeout. */
const FIRESTORE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * {@link Metrics} as Prometheus series in a registry of its own (not
 * prom-client's global one, so several services in one process do not
 * clash), with prom-client's default process metrics. Series names are
 * listed in the README's Observability section.
 *
 * Every series of a closed label set is created up front (exported as 0,
 * so rates and alerts work from the first scrape); RPC series per method
 * and status on first use. Recording is a lookup of a bound series and an
 * addition.
 */
export class PrometheusMetrics implements Metrics {
  /** The registry {@link MetricsServer} serves. */
  readonly registry = new Registry();
  private readonly rpcCount: TalliedCounter;
  private readonly rpcDuration: BucketHistogram;
  /** method -> code -> bound series. */
  private readonly rpcSeries = new Map<string, Map<string, { count: Tally; duration: HistogramSeries }>>();
  private readonly upstreamCount: Record<UpstreamEndpoint, Record<UpstreamOutcome, Tally>>;
  private readonly upstreamDuration: Record<UpstreamEndpoint, HistogramSeries>;
  /** Only the endpoints that have a circuit breaker (the certs fetch has none). */
  private readonly breakerOpen: Partial<Record<UpstreamEndpoint, { set(value: number): void }>>;
  private readonly cacheLookups: Record<CacheName, { hit: Tally; miss: Tally }>;
  private readonly refreshes: Record<RefreshOutcomeLabel, Tally>;
  private readonly joins: Record<RefreshJoinScope, Tally>;
  private readonly dead: Record<DeadReasonLabel, Tally>;
  private readonly firestoreErrors: TalliedCounter;
  private readonly firestoreDuration: Record<FirestoreOperation, HistogramSeries>;

  constructor() {
    const registry = this.registry;
    collectDefaultMetrics({ register: registry });

    this.rpcCount = new TalliedCounter(registry, 'tokenbroker_rpc_handled_total', 'RPCs answered, by method and gRPC status code.', ['method', 'code']);
    this.rpcDuration = new BucketHistogram(registry, 'tokenbroker_rpc_duration_seconds', 'Time from receiving an RPC to answering it, by method and gRPC status code.', ['method', 'code'], RPC_BUCKETS);

    const upstream = new TalliedCounter(registry, 'tokenbroker_upstream_requests_total', 'Requests to Google\'s OAuth endpoints (token, revoke, certs) by outcome; breaker_open counts requests the circuit breaker refused without sending.', ['endpoint', 'outcome']);
    const upstreamDuration = new BucketHistogram(registry, 'tokenbroker_upstream_duration_seconds', 'Duration of each request sent to Google\'s OAuth endpoints.', ['endpoint'], UPSTREAM_BUCKETS);
    const breaker = new Gauge({ name: 'tokenbroker_upstream_breaker_open', help: '1 while the circuit breaker of a Google endpoint is open (from opening until a probe succeeds).', labelNames: ['endpoint'], registers: [registry] });
    this.upstreamCount = byKey(UPSTREAM_ENDPOINTS, (endpoint) => byKey(UPSTREAM_OUTCOMES, (outcome) => upstream.tally(endpoint, outcome)));
    this.upstreamDuration = byKey(UPSTREAM_ENDPOINTS, (endpoint) => upstreamDuration.bind(endpoint));
    this.breakerOpen = byKey(['token', 'revoke'] as const, (endpoint) => {
      const child = breaker.labels(endpoint);
      child.set(0);
      return child;
    });

    const cache = new TalliedCounter(registry, 'tokenbroker_cache_lookups_total', 'Lookups in the in-memory access token and profile caches, and in the access tokens replicas share in Firestore.', ['cache', 'result']);
    this.cacheLookups = byKey(CACHE_NAMES, (name) => ({ hit: cache.tally(name, 'hit'), miss: cache.tally(name, 'miss') }));

    const refreshes = new TalliedCounter(registry, 'tokenbroker_refreshes_total', 'Refreshes of an access token at Google from a stored refresh token, by outcome.', ['outcome']);
    this.refreshes = byKey(REFRESH_OUTCOMES, (outcome) => refreshes.tally(outcome));
    const joins = new TalliedCounter(registry, 'tokenbroker_refresh_joins_total', 'Calls served by a refresh they did not start: local (this process\'s flight) or shared (another replica\'s, through Firestore).', ['scope']);
    this.joins = byKey(REFRESH_JOIN_SCOPES, (scope) => joins.tally(scope));
    const dead = new TalliedCounter(registry, 'tokenbroker_grants_marked_dead_total', 'Grants this process marked REAUTH_REQUIRED, by reason.', ['reason']);
    this.dead = byKey(DEAD_REASONS, (reason) => dead.tally(reason));
    this.firestoreErrors = new TalliedCounter(registry, 'tokenbroker_firestore_errors_total', 'Firestore operations that failed or ran out of time, by operation.', ['operation']);
    const firestoreDuration = new BucketHistogram(registry, 'tokenbroker_firestore_duration_seconds', 'Duration of each Firestore operation, by operation: from the call into the client library to its answer, failure or the store timeout.', ['operation'], FIRESTORE_BUCKETS);
    this.firestoreDuration = byKey(FIRESTORE_OPERATIONS, (operation) => firestoreDuration.bind(operation));
  }

  rpcHandled(method: string, code: string, seconds: number): void {
    let byCode = this.rpcSeries.get(method);
    if (!byCode) {
      byCode = new Map();
      this.rpcSeries.set(method, byCode);
    }
    let series = byCode.get(code);
    if (!series) {
      series = { count: this.rpcCount.tally(method, code), duration: this.rpcDuration.bind(method, code) };
      byCode.set(code, series);
    }
    series.count.n += 1;
    series.duration.observe(seconds);
  }

  upstreamRequest(endpoint: UpstreamEndpoint, outcome: UpstreamOutcome, seconds: number): void {
    this.upstreamCount[endpoint][outcome].n += 1;
    if (outcome !== 'breaker_open') this.upstreamDuration[endpoint].observe(seconds);
  }

  upstreamBreakerOpen(endpoint: UpstreamEndpoint, open: boolean): void {
    this.breakerOpen[endpoint]?.set(open ? 1 : 0);
  }

  cacheLookup(cache: CacheName, hit: boolean): void {
    const tallies = this.cacheLookups[cache];
    (hit ? tallies.hit : tallies.miss).n += 1;
  }

  refresh(outcome: RefreshOutcomeLabel): void {
    this.refreshes[outcome].n += 1;
  }

  refreshJoined(scope: RefreshJoinScope): void {
    this.joins[scope].n += 1;
  }

  grantMarkedDead(reason: DeadReasonLabel): void {
    this.dead[reason].n += 1;
  }

  firestoreError(operation: FirestoreOperation): void {
    this.firestoreErrors.tally(operation).n += 1;
  }

  firestoreCall(operation: FirestoreOperation, seconds: number): void {
    this.firestoreDuration[operation].observe(seconds);
  }

  /** The registry in Prometheus' text format, and its content type. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** An object with one entry per key of a closed set. */
function byKey<K extends string, V>(keys: readonly K[], make: (key: K) => V): Record<K, V> {
  return Object.fromEntries(keys.map((key) => [key, make(key)])) as Record<K, V>;
}
