import type { SecretManagerServiceClient } from '@google-cloud/secret-manager';
import { readFile } from 'node:fs/promises';
import { SECRET_VERSION_NAME, type SecretSource } from './secret-source';

/** Settings of {@link SecretManagerSource}. */
export interface SecretManagerSourceOptions {
  /** Deadline of the whole read, retries of UNAVAILABLE / DEADLINE_EXCEEDED included. */
  timeoutMs: number;
}

/**
 * Reads secrets from Secret Manager, or from files for `file:` references
 * (local development). Reads are bounded: the client's default retry policy
 * would keep retrying UNAVAILABLE for ten minutes and hang start-up.
 */
export class SecretManagerSource implements SecretSource {
  /** @param client a Secret Manager client, or undefined where only `file:` references are used */
  constructor(
    private readonly client: SecretManagerServiceClient | undefined,
    private readonly options: SecretManagerSourceOptions,
  ) {}

  async read(ref: string): Promise<Buffer> {
    if (ref.startsWith('file:')) {
      try {
        return await readFile(ref.slice('file:'.length));
      } catch (err: unknown) {
        const code = (err as { code?: unknown }).code;
        throw new Error(`cannot read secret file ${ref.slice('file:'.length)}: ${String(code ?? 'error')}`);
      }
    }
    if (!SECRET_VERSION_NAME.test(ref)) throw new Error(`not a secret reference: ${ref}`);
    if (!this.client) throw new Error(`no Secret Manager client is configured to read ${ref}`);
    try {
      const [version] = await this.client.accessSecretVersion(
        { name: ref },
        {
          timeout: this.options.timeoutMs,
          retry: {
            retryCodes: [14 /* UNAVAILABLE */, 4 /* DEADLINE_EXCEEDED */],
            backoffSettings: {
              initialRetryDelayMillis: 100,
              retryDelayMultiplier: 2,
              maxRetryDelayMillis: 2000,
              initialRpcTimeoutMillis: this.options.timeoutMs,
              rpcTimeoutMultiplier: 1,
              maxRpcTimeoutMillis: this.options.timeoutMs,
              totalTimeoutMillis: this.options.timeoutMs,
            },
          },
        },
      );
      const data = version.payload?.data;
      if (!data || data.length === 0) throw new Error('the secret version is empty');
      return Buffer.isBuffer(data) ? data : Buffer.from(data as Uint8Array | string);
    } catch (err: unknown) {
      const detail = err instanceof Error ? err.message.split('\n')[0] : 'unknown error';
      throw new Error(`cannot read secret ${ref} from Secret Manager: ${detail}`);
    }
  }
}
