import { credentials as grpcCredentials, Metadata, status, type ChannelCredentials, type ChannelOptions } from '@grpc/grpc-js';
import { isServiceError } from './error-info';
import {
  TokenBrokerServiceClient,
  type ExchangeCodeRequest,
  type ExchangeCodeResponse,
  type GetAccessTokenRequest,
  type GetAccessTokenResponse,
  type GetProfileRequest,
  type GetProfileResponse,
  type GetGrantStatusRequest,
  type GetGrantStatusResponse,
  type RevokeUserRequest,
  type RevokeUserResponse,
} from '../gen/tokenbroker/v1/token_broker';

/** Per-call options of {@link TokenBrokerClient}. */
export interface CallOptions {
  /** Milliseconds until the call is abandoned with DEADLINE_EXCEEDED. */
  timeoutMs?: number;
  metadata?: Metadata;
}

/** How {@link TokenBrokerClient} reaches the service and proves who it is. */
export interface TokenBrokerClientOptions {
  /** Channel credentials; plaintext by default (loopback, or a mesh sidecar). */
  credentials?: ChannelCredentials;
  /** grpc-js channel options (keepalive, `grpc.ssl_target_name_override`, ...). */
  channelOptions?: ChannelOptions;
  /**
   * Returns the caller's Google ID token for the broker's audience, sent as
   * `authorization: Bearer` on every call. On GCP, google-auth-library's
   * `GoogleAuth.getIdTokenClient(audience)` mints and renews one for the
   * workload's service account. Unset when the broker authenticates callers
   * by mutual TLS or runs with insecure-none.
   */
  idToken?: () => string | Promise<string>;
  /** Deadline of a call (all its attempts) when the call sets none; unset: no deadline. */
  defaultTimeoutMs?: number;
  /**
   * Retries of calls answered UNAVAILABLE (a replica shutting down, Google
   * or Firestore briefly failing), with full-jitter backoff starting at
   * `backoffMs`, within the call's deadline. Every TokenBroker RPC is safe
   * to repeat: ExchangeCode replays its first answer for the same code.
   * Default: none.
   */
  retry?: { attempts: number; backoffMs: number };
}

/**
 * A promise-based client of TokenBrokerService over the ts-proto generated
 * one, for peer services, the CLI and tests. Errors are grpc-js
 * ServiceErrors; read their reason with errorInfoOf().
 */
export class TokenBrokerClient {
  /** The generated callback-style client, for what this wrapper does not cover. */
  readonly raw: TokenBrokerServiceClient;

  private readonly idToken: TokenBrokerClientOptions['idToken'];

  /** @param address host:port of the service */
  constructor(
    address: string,
    private readonly options: TokenBrokerClientOptions = {},
  ) {
    this.raw = new TokenBrokerServiceClient(address, options.credentials ?? grpcCredentials.createInsecure(), options.channelOptions);
    this.idToken = options.idToken;
  }

  exchangeCode(request: Partial<ExchangeCodeRequest>, options?: CallOptions): Promise<ExchangeCodeResponse> {
    return this.unary((req, md, opts, cb) => this.raw.exchangeCode(req, md, opts, cb), { authCode: '', redirectUri: '', ...request }, options);
  }

  getAccessToken(request: Partial<GetAccessTokenRequest>, options?: CallOptions): Promise<GetAccessTokenResponse> {
    return this.unary((req, md, opts, cb) => this.raw.getAccessToken(req, md, opts, cb), { userId: '', scopes: [], ...request }, options);
  }

  getProfile(request: Partial<GetProfileRequest>, options?: CallOptions): Promise<GetProfileResponse> {
    return this.unary((req, md, opts, cb) => this.raw.getProfile(req, md, opts, cb), { userId: '', ...request }, options);
  }

  getGrantStatus(request: Partial<GetGrantStatusRequest>, options?: CallOptions): Promise<GetGrantStatusResponse> {
    return this.unary((req, md, opts, cb) => this.raw.getGrantStatus(req, md, opts, cb), { userId: '', ...request }, options);
  }

  revokeUser(request: Partial<RevokeUserRequest>, options?: CallOptions): Promise<RevokeUserResponse> {
    return this.unary((req, md, opts, cb) => this.raw.revokeUser(req, md, opts, cb), { userId: '', ...request }, options);
  }

  /** Closes the channel. */
  close(): void {
    this.raw.close();
  }

  private async unary<Req, Res>(
    invoke: (req: Req, md: Metadata, opts: { deadline?: Date }, cb: (err: Error | null, res?: Res) => void) => unknown,
    request: Req,
    options: CallOptions = {},
  ): Promise<Res> {
    const metadata = options.metadata ?? new Metadata();
    if (this.idToken && !metadata.get('authorization').length) metadata.set('authorization', `Bearer ${await this.idToken()}`);
    const timeoutMs = options.timeoutMs ?? this.options.defaultTimeoutMs;
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    const retry = this.options.retry ?? { attempts: 0, backoffMs: 0 };
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await new Promise<Res>((resolve, reject) => {
          invoke(request, metadata, deadline === undefined ? {} : { deadline: new Date(deadline) }, (err, res) => (err ? reject(err) : resolve(res as Res)));
        });
      } catch (err: unknown) {
        const wait = Math.random() * retry.backoffMs * 2 ** attempt;
        const retryable = isServiceError(err) && err.code === status.UNAVAILABLE && attempt < retry.attempts;
        if (!retryable || (deadline !== undefined && Date.now() + wait >= deadline)) throw err;
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }
}
