import { GOOGLE_ENDPOINTS, type GoogleEndpoints } from '../adapters/google/google-endpoints';
import { isSecretRef } from '../adapters/secrets/secret-source';
import { LOG_LEVELS, type LogLevel } from '../observability/logger';
import type { TracingConfig } from '../observability/tracing';

/** Everything the service reads from its environment, validated. */
export interface Config {
  /** gRPC listen address and port (Cloud Run sets PORT). */
  host: string;
  port: number;
  projectId: string;
  firestore: {
    databaseId: string;
    collection: string;
    /** host:port of the Firestore emulator; unset in production. */
    emulatorHost?: string;
    /** Deadline of each store operation. */
    timeoutMs: number;
  };
  secrets: {
    /** Reference to Google's client_secret_*.json of the server OAuth client. */
    oauthClientRef: string;
    /** Reference to the encryption keyset JSON. */
    keysetRef: string;
    /** host:port of a plaintext Secret Manager endpoint (local testing only). */
    secretManagerEndpoint?: string;
    timeoutMs: number;
  };
  google: GoogleEndpoints & {
    /** Per-attempt timeout of an upstream call. */
    timeoutMs: number;
    /** Extra attempts after a transient failure (network, 5xx, 429). */
    retries: number;
    /** First backoff before a retry; doubles per attempt, with full jitter. */
    backoffMs: number;
    /** Consecutive transient failures that open an endpoint's circuit breaker. */
    breakerFailures: number;
    /** How long an open breaker answers UNAVAILABLE before letting one probe through. */
    breakerOpenMs: number;
  };
  /** Time budget of one call when the caller sets no (or a longer) deadline. */
  callTimeoutMs: number;
  callers: CallerAuthConfig;
  /** A plaintext port serving only grpc.health.v1, for probes that cannot speak TLS; unset: none. */
  healthPort?: number;
  /** The Cross-Account Protection (RISC) receiver; off while `port` is unset. */
  risc: {
    /** HTTP port Google's Security Event Tokens are pushed to. */
    port?: number;
    /** Google's RISC signing keys (the `jwks_uri` of its RISC configuration). */
    jwksUrl: string;
    /** The `iss` of Google's Security Event Tokens. */
    issuer: string;
  };
  allowedAppClientIds: string[];
  tokens: {
    defaultMinTtlMs: number;
    maxMinTtlMs: number;
    maxCachedUsers: number;
    profileCacheTtlMs: number;
    exchangeReplayWindowMs: number;
    exchangePendingTimeoutMs: number;
    /** How long one replica's claim to refresh a grant holds before another may take it over. */
    refreshLeaseMs: number;
  };
  logLevel: LogLevel;
  /** HTTP port serving Prometheus metrics at /metrics; unset: none. */
  metricsPort?: number;
  /** OpenTelemetry trace export; off by default. */
  tracing: TracingConfig;
  /** How long in-flight calls may finish after SIGTERM before they are cut. */
  shutdownGraceMs: number;
}

/** How callers prove who they are; see the README's Security section. */
export type CallerAuthConfig =
  | {
      mode: 'google-id-token';
      /** The `aud` callers mint their ID tokens for. */
      audience: string;
      /** Path of the caller policy (YAML or JSON). */
      policyFile: string;
    }
  | {
      mode: 'mtls';
      policyFile: string;
      /** Secret references of the server's certificate chain, its private key, and the CA bundle client certificates must chain to. */
      tls: { certRef: string; keyRef: string; clientCaRef: string };
    }
  | { mode: 'mesh-xfcc'; policyFile: string }
  | { mode: 'insecure-none' };

/** `jwks_uri` of https://accounts.google.com/.well-known/risc-configuration. */
export const RISC_JWKS_URL = 'https://www.googleapis.com/oauth2/v3/certs';
/** `issuer` of Google's RISC configuration. */
export const RISC_ISSUER = 'https://accounts.google.com/';

export const CALLER_AUTH_MODES = ['google-id-token', 'mtls', 'mesh-xfcc', 'insecure-none'] as const;

/** Values of TOKENBROKER_OTEL_EXPORTER. */
export const OTEL_EXPORTERS = ['none', 'otlp'] as const;

/** A setting is missing or malformed; the message names it and what was expected. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * Reads and validates the configuration from `env` (process.env in main;
 * tests pass their own). Throws ConfigError naming the first bad setting.
 * The README's configuration table documents every setting and default.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): Config {
  const read = new EnvReader(env);
  const config: Config = {
    host: read.string('TOKENBROKER_LISTEN_HOST', '0.0.0.0'),
    port: read.integer('PORT', 8080, 0, 65535),
    projectId: read.required('GOOGLE_CLOUD_PROJECT', /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, 'a Google Cloud project ID'),
    firestore: {
      databaseId: read.string('TOKENBROKER_FIRESTORE_DATABASE', '(default)'),
      collection: read.matching('TOKENBROKER_FIRESTORE_COLLECTION', 'tokenbroker_grants', /^[A-Za-z0-9_-]{1,100}$/, 'a collection ID of letters, digits, _ and -'),
      emulatorHost: read.optional('FIRESTORE_EMULATOR_HOST', /^[^\s/:]+:\d{1,5}$/, 'host:port'),
      timeoutMs: read.integer('TOKENBROKER_STORE_TIMEOUT_MS', 5000, 100, 60_000),
    },
    secrets: {
      oauthClientRef: read.secretRef('TOKENBROKER_OAUTH_CLIENT_SECRET'),
      keysetRef: read.secretRef('TOKENBROKER_ENCRYPTION_KEYSET'),
      secretManagerEndpoint: read.optional('TOKENBROKER_SECRET_MANAGER_ENDPOINT', /^[^\s/:]+:\d{1,5}$/, 'host:port'),
      timeoutMs: read.integer('TOKENBROKER_SECRET_TIMEOUT_MS', 10_000, 100, 120_000),
    },
    google: {
      tokenUrl: read.url('TOKENBROKER_GOOGLE_TOKEN_URL', GOOGLE_ENDPOINTS.tokenUrl),
      revokeUrl: read.url('TOKENBROKER_GOOGLE_REVOKE_URL', GOOGLE_ENDPOINTS.revokeUrl),
      certsUrl: read.url('TOKENBROKER_GOOGLE_CERTS_URL', GOOGLE_ENDPOINTS.certsUrl),
      issuers: read.list('TOKENBROKER_ID_TOKEN_ISSUERS', GOOGLE_ENDPOINTS.issuers),
      timeoutMs: read.integer('TOKENBROKER_UPSTREAM_TIMEOUT_MS', 5000, 100, 60_000),
      retries: read.integer('TOKENBROKER_UPSTREAM_RETRIES', 2, 0, 5),
      backoffMs: read.integer('TOKENBROKER_UPSTREAM_BACKOFF_MS', 200, 1, 10_000),
      breakerFailures: read.integer('TOKENBROKER_UPSTREAM_BREAKER_FAILURES', 5, 1, 1000),
      breakerOpenMs: read.integer('TOKENBROKER_UPSTREAM_BREAKER_OPEN_MS', 10_000, 100, 300_000),
    },
    callTimeoutMs: read.integer('TOKENBROKER_CALL_TIMEOUT_MS', 10_000, 100, 60_000),
    callers: readCallerAuth(read),
    healthPort: read.optionalInteger('TOKENBROKER_HEALTH_PORT', 0, 65535),
    risc: {
      port: read.optionalInteger('TOKENBROKER_RISC_PORT', 0, 65535),
      jwksUrl: read.url('TOKENBROKER_RISC_JWKS_URL', RISC_JWKS_URL),
      issuer: read.matching('TOKENBROKER_RISC_ISSUER', RISC_ISSUER, /^https?:\/\/\S+$/, 'an http(s) URL (the iss of Google\'s security event tokens)'),
    },
    allowedAppClientIds: read.list('TOKENBROKER_ALLOWED_APP_CLIENT_IDS', []),
    tokens: {
      defaultMinTtlMs: read.integer('TOKENBROKER_DEFAULT_MIN_TTL_SECONDS', 300, 0, 3300) * 1000,
      maxMinTtlMs: read.integer('TOKENBROKER_MAX_MIN_TTL_SECONDS', 3300, 0, 3500) * 1000,
      maxCachedUsers: read.integer('TOKENBROKER_MAX_CACHED_USERS', 100_000, 1, 10_000_000),
      profileCacheTtlMs: read.integer('TOKENBROKER_PROFILE_CACHE_TTL_SECONDS', 60, 0, 3600) * 1000,
      exchangeReplayWindowMs: read.integer('TOKENBROKER_EXCHANGE_REPLAY_SECONDS', 600, 0, 3600) * 1000,
      exchangePendingTimeoutMs: read.integer('TOKENBROKER_EXCHANGE_PENDING_SECONDS', 30, 1, 300) * 1000,
      refreshLeaseMs: read.integer('TOKENBROKER_REFRESH_LEASE_MS', 20_000, 200, 600_000),
    },
    logLevel: read.oneOf('TOKENBROKER_LOG_LEVEL', 'info', LOG_LEVELS),
    metricsPort: read.optionalInteger('TOKENBROKER_METRICS_PORT', 0, 65535),
    tracing: {
      exporter: read.oneOf('TOKENBROKER_OTEL_EXPORTER', 'none', OTEL_EXPORTERS),
      // The standard OpenTelemetry variable is honoured when ours is unset.
      endpoint: read.url('TOKENBROKER_OTEL_ENDPOINT', read.url('OTEL_EXPORTER_OTLP_ENDPOINT', 'http://localhost:4318')),
      samplePercent: read.integer('TOKENBROKER_OTEL_SAMPLE_PERCENT', 100, 0, 100),
    },
    shutdownGraceMs: read.integer('TOKENBROKER_SHUTDOWN_GRACE_MS', 8000, 0, 60_000),
  };
  if (config.tokens.defaultMinTtlMs > config.tokens.maxMinTtlMs) {
    throw new ConfigError('TOKENBROKER_DEFAULT_MIN_TTL_SECONDS must not exceed TOKENBROKER_MAX_MIN_TTL_SECONDS');
  }
  // A refresh starts attempts within one call's budget and lets the last
  // one finish; a lease shorter than that could pass to another replica
  // while its holder is still waiting on Google.
  if (config.tokens.refreshLeaseMs <= config.callTimeoutMs + config.google.timeoutMs) {
    throw new ConfigError('TOKENBROKER_REFRESH_LEASE_MS must be greater than TOKENBROKER_CALL_TIMEOUT_MS + TOKENBROKER_UPSTREAM_TIMEOUT_MS');
  }
  return config;
}

/**
 * Caller authentication has no default: a deployment that forgot it must
 * not start open. Running without it takes the explicit insecure-none.
 */
function readCallerAuth(read: EnvReader): CallerAuthConfig {
  const mode = read.requiredOneOf('TOKENBROKER_CALLER_AUTH', CALLER_AUTH_MODES);
  if (mode === 'insecure-none') return { mode };
  const policyFile = read.required('TOKENBROKER_POLICY_FILE', /^\S+$/, 'the path of the caller policy file (YAML or JSON)');
  if (mode === 'mesh-xfcc') return { mode, policyFile };
  if (mode === 'mtls') {
    return {
      mode,
      policyFile,
      tls: {
        certRef: read.secretRef('TOKENBROKER_TLS_CERT'),
        keyRef: read.secretRef('TOKENBROKER_TLS_KEY'),
        clientCaRef: read.secretRef('TOKENBROKER_TLS_CLIENT_CA'),
      },
    };
  }
  return {
    mode,
    policyFile,
    audience: read.required('TOKENBROKER_CALLER_AUDIENCE', /^\S{1,512}$/, 'the audience callers mint their ID tokens for (e.g. the service URL)'),
  };
}

/** Typed, validating accessors over an environment map. */
class EnvReader {
  constructor(private readonly env: Readonly<Record<string, string | undefined>>) {}

  private raw(name: string): string | undefined {
    const value = this.env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  required(name: string, pattern: RegExp, expected: string): string {
    const value = this.raw(name);
    if (value === undefined) throw new ConfigError(`${name} is required: set it to ${expected}`);
    if (!pattern.test(value)) throw new ConfigError(`${name} must be ${expected}`);
    return value;
  }

  matching(name: string, fallback: string, pattern: RegExp, expected: string): string {
    const value = this.raw(name) ?? fallback;
    if (!pattern.test(value)) throw new ConfigError(`${name} must be ${expected}`);
    return value;
  }

  optional(name: string, pattern: RegExp, expected: string): string | undefined {
    const value = this.raw(name);
    if (value !== undefined && !pattern.test(value)) throw new ConfigError(`${name} must be ${expected}`);
    return value;
  }

  optionalInteger(name: string, min: number, max: number): number | undefined {
    return this.raw(name) === undefined ? undefined : this.integer(name, min, min, max);
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) {
      throw new ConfigError(`${name} must be a whole number from ${min} to ${max}`);
    }
    return n;
  }

  url(name: string, fallback: string): string {
    const value = this.raw(name) ?? fallback;
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      throw new ConfigError(`${name} must be an absolute http(s) URL`);
    }
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
      throw new ConfigError(`${name} must be an absolute http(s) URL`);
    }
    return value;
  }

  list(name: string, fallback: readonly string[]): string[] {
    const value = this.raw(name);
    if (value === undefined) return [...fallback];
    return value
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
  }

  requiredOneOf<T extends string>(name: string, allowed: readonly T[]): T {
    const value = this.raw(name);
    if (value === undefined) throw new ConfigError(`${name} is required: set it to one of ${allowed.join(', ')}`);
    return this.oneOf(name, value as T, allowed);
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const value = this.raw(name) ?? fallback;
    if (!(allowed as readonly string[]).includes(value)) {
      throw new ConfigError(`${name} must be one of ${allowed.join(', ')}`);
    }
    return value as T;
  }

  secretRef(name: string): string {
    const value = this.raw(name);
    if (value === undefined || !isSecretRef(value)) {
      throw new ConfigError(
        `${name} must name a secret: projects/PROJECT/secrets/NAME/versions/VERSION (Secret Manager) or file:PATH (local development)`,
      );
    }
    return value;
  }
}
