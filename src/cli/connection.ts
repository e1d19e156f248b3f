import { credentials as grpcCredentials, type ChannelCredentials } from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { googleIdTokenSource, mutualTlsCredentials, type IdTokenClientFactory } from '../client/caller-credentials';
import type { TokenBrokerClientOptions } from '../client/token-broker-client';
import type { CredentialOptions } from './args';
import { CliError, usageError } from './cli-error';
import { EXIT } from './exit-codes';

/** How the CLI's calls reach the broker and prove who is calling. */
export interface Connection {
  /** Options of the TokenBrokerClient for the broker's RPCs. */
  client: TokenBrokerClientOptions;
  /** Channel credentials alone, for the health check (which needs no caller identity). */
  channel?: ChannelCredentials;
}

/** What {@link connectionFor} reads besides the command line; tests replace the I/O. */
export interface ConnectionSources {
  /** $TOKENBROKER_ID_TOKEN: a ready ID token, used when no --id-token-* option is given. */
  envIdToken?: string;
  readFile?: (path: string) => Buffer;
  /** Mints ID tokens for --id-token-audience; default google-auth-library's GoogleAuth. */
  idTokens?: IdTokenClientFactory;
}

/**
 * Builds the client options for `options`. Files are read here, so a missing
 * or unreadable one is a usage error naming the option; their content (a
 * token, a key) never appears in any message.
 */
export function connectionFor(options: CredentialOptions, sources: ConnectionSources = {}): Connection {
  const readFile = sources.readFile ?? readFileSync;
  const read = (file: string, option: string): Buffer => {
    try {
      return readFile(file);
    } catch (err: unknown) {
      const code = (err as { code?: unknown }).code;
      throw usageError(`cannot read the ${option} file${typeof code === 'string' ? ` (${code})` : ''}`);
    }
  };

  let channel: ChannelCredentials | undefined;
  if (options.tlsCertFile !== undefined && options.tlsKeyFile !== undefined) {
    channel = mutualTlsCredentials({
      ca: options.tlsCaFile !== undefined ? read(options.tlsCaFile, '--tls-ca') : undefined,
      cert: read(options.tlsCertFile, '--tls-cert'),
      key: read(options.tlsKeyFile, '--tls-key'),
    });
  } else if (options.tls) {
    channel = grpcCredentials.createSsl(options.tlsCaFile !== undefined ? read(options.tlsCaFile, '--tls-ca') : null);
  }

  let idToken: (() => Promise<string>) | undefined;
  if (options.idTokenAudience !== undefined) {
    idToken = minted(options.idTokenAudience, sources.idTokens);
  } else if (options.idTokenFile !== undefined) {
    idToken = ready(read(options.idTokenFile, '--id-token-file').toString('utf8'), 'the --id-token-file file');
  } else if (sources.envIdToken !== undefined && sources.envIdToken !== '') {
    idToken = ready(sources.envIdToken, 'TOKENBROKER_ID_TOKEN');
  }
  return { client: { credentials: channel, idToken }, channel };
}

/** A fixed token, checked for the shape of a JWT so a wrong file fails here rather than at the broker. */
function ready(raw: string, source: string): () => Promise<string> {
  const token = raw.trim();
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token)) {
    throw usageError(`${source} does not hold an ID token (a JWT: three base64url parts separated by dots)`);
  }
  return () => Promise.resolve(token);
}

/** Tokens minted on demand; a failure to get one is reported as such, not as a broker error. */
function minted(audience: string, factory: IdTokenClientFactory | undefined): () => Promise<string> {
  const source = googleIdTokenSource(audience, factory);
  return async () => {
    try {
      return await source();
    } catch (err: unknown) {
      // google-auth-library's messages name the missing setup (no credentials, not on GCP); first line only.
      const why = err instanceof Error ? (err.message.split('\n')[0] ?? '').slice(0, 300) : '';
      throw new CliError(
        EXIT.UNREACHABLE,
        'UNAUTHENTICATED',
        `cannot get a Google ID token for audience ${audience}${why !== '' ? `: ${why}` : ''}`,
      );
    }
  };
}
