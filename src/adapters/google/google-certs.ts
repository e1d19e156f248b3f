import { createPublicKey, type KeyObject } from 'node:crypto';
import type { Certificates, OAuth2Client } from 'google-auth-library';
import { GaxiosError } from 'gaxios';
import { BrokerError } from '../../domain/broker-error';
import type { Clock } from '../../domain/clock';
import type { Metrics } from '../../observability/metrics';

/** Settings of {@link GoogleCerts}. */
export interface GoogleCertsOptions {
  /** Google's ID-token signing keys in its PEM map format (`{kid: pem}`). */
  url: string;
  /** Per-attempt timeout of a fetch. */
  timeoutMs: number;
  /** Kept this long when the response has no cache-control max-age. */
  defaultMaxAgeMs: number;
  /** Least time between two fetches forced by an unknown key ID, so forged kids cannot make us hammer Google. */
  minRefetchIntervalMs: number;
  clock: Clock;
  /** Counts each fetch by outcome, and its duration (default: nothing recorded). */
  metrics?: Metrics;
}

/**
 * Google's ID-token signing keys, cached for the max-age Google sends.
 * Unlike google-auth-library's own cache, a token signed by a key we have
 * not seen yet triggers one early refetch (rate-limited): Google starts
 * signing with a new key while old copies of the key list are still cached.
 *
 * Each PEM is parsed once, when fetched, into a public key object: parsing
 * an X.509 certificate costs about 150 µs, five times the RSA check itself,
 * and the library would otherwise parse it again for every token.
 */
export class GoogleCerts {
  private certs: Certificates | undefined;
  private expiresAt = 0;
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private inFlight: Promise<Certificates> | undefined;

  /** @param client the OAuth2Client whose HTTP transport carries the fetch */
  constructor(
    private readonly client: OAuth2Client,
    private readonly options: GoogleCertsOptions,
  ) {}

  /**
   * The key map, fetched when missing or past its max-age, for
   * OAuth2Client.verifySignedJwtWithCertsAsync.
   */
  async current(): Promise<Certificates> {
    if (this.certs && this.options.clock.now() < this.expiresAt) return this.certs;
    return this.fetch();
  }

  /**
   * Fetches again because a token named a key ID we lack; returns undefined
   * when the last fetch is too recent for another.
   */
  async refetchForUnknownKey(): Promise<Certificates | undefined> {
    if (this.options.clock.now() - this.fetchedAt < this.options.minRefetchIntervalMs) return undefined;
    return this.fetch();
  }

  private fetch(): Promise<Certificates> {
    this.inFlight ??= this.load().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async load(): Promise<Certificates> {
    let res;
    const started = performance.now();
    const record = (outcome: 'ok' | 'client_error' | 'server_error' | 'network' | 'bad_response') =>
      this.options.metrics?.upstreamRequest('certs', outcome, (performance.now() - started) / 1000);
    try {
      res = await this.client.transporter.request<unknown>({
        url: this.options.url,
        method: 'GET',
        timeout: this.options.timeoutMs,
        responseType: 'json',
        retry: true,
        retryConfig: { retry: 1, noResponseRetries: 1, statusCodesToRetry: [[500, 599]] },
      });
    } catch (err: unknown) {
      const status = err instanceof GaxiosError ? err.response?.status : undefined;
      record(status === undefined ? 'network' : status >= 500 || status === 429 ? 'server_error' : 'client_error');
      const detail = status !== undefined ? `HTTP ${status}` : 'no response';
      throw new BrokerError('UPSTREAM_UNAVAILABLE', 'Google\'s ID token certificates could not be fetched', {
        cause: new Error(`certs fetch failed: ${detail}`),
      });
    }
    const keys = publicKeysOf(res.data);
    if (!keys) {
      record('bad_response');
      throw new BrokerError('UPSTREAM_UNAVAILABLE', 'Google\'s ID token certificates came back malformed');
    }
    record('ok');
    const now = this.options.clock.now();
    const maxAge = /max-age=(\d+)/.exec(res.headers.get('cache-control') ?? '')?.[1];
    // The library hands each entry to Node's Verify#verify, which takes a
    // KeyObject as readily as a PEM; its type only names PEM strings and JWKs.
    this.certs = keys as unknown as Certificates;
    this.fetchedAt = now;
    this.expiresAt = now + (maxAge === undefined ? this.options.defaultMaxAgeMs : Number(maxAge) * 1000);
    return this.certs;
  }
}

/** `{kid: PEM}` parsed into public keys, or undefined when any entry is not a PEM key or certificate. */
function publicKeysOf(data: unknown): Record<string, KeyObject> | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const keys: Record<string, KeyObject> = {};
  for (const [kid, pem] of Object.entries(data)) {
    if (typeof pem !== 'string') return undefined;
    try {
      keys[kid] = createPublicKey(pem);
    } catch {
      return undefined;
    }
  }
  return keys;
}
