import { status } from '@grpc/grpc-js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { errorInfoOf, isServiceError } from '../../src/client/error-info';
import type { TokenBrokerClient } from '../../src/client/token-broker-client';
import type { ExchangeCodeResponse } from '../../src/gen/tokenbroker/v1/token_broker';

/** The path the app POSTs its server auth code to. */
export const SIGN_IN_PATH = '/auth/google/code';

/** Options of {@link createGatewayServer}. */
export interface GatewayOptions {
  /**
   * The TokenBroker client, set up with the gateway's own identity (an ID
   * token source or mTLS credentials), a default deadline and retry of
   * UNAVAILABLE.
   */
  broker: Pick<TokenBrokerClient, 'exchangeCode'>;
  /** Largest accepted request body; larger ones get 413. Default 4096 bytes (a code is ~100). */
  maxBodyBytes?: number;
  /** Deadline of the ExchangeCode call. Default 10 s. */
  exchangeTimeoutMs?: number;
  /** Seconds the app is told to wait (`Retry-After`) when the broker or Google is unavailable. Default 5. */
  retryAfterSeconds?: number;
  /** Receives one structured event per request outcome; never given the code. Default: discard. */
  log?: (event: Record<string, unknown>) => void;
}

/** What the app receives: the status, and `{ "error": NAME }` or the signed-in user. */
interface Reply {
  status: number;
  body: Record<string, unknown>;
  headers?: Record<string, string>;
}

/** The body of a failure the app can branch on; see the README's table of what the app does for each. */
function failure(statusCode: number, error: string, headers?: Record<string, string>): Reply {
  return { status: statusCode, body: { error }, headers };
}

/**
 * A minimal mobile/web sign-in gateway: accepts `POST /auth/google/code` with
 * `{"serverAuthCode": "..."}`, forwards the code to TokenBroker's
 * ExchangeCode with the gateway's own identity, and answers the app with the
 * user ID and profile basics, never a token.
 *
 * It serves plain HTTP: TLS is terminated in front of it (Cloud Run, a
 * Google Cloud load balancer, or the mesh ingress gateway), and the app must
 * only ever reach it over HTTPS.
 */
export function createGatewayServer(options: GatewayOptions): Server {
  const settings = {
    maxBodyBytes: options.maxBodyBytes ?? 4096,
    exchangeTimeoutMs: options.exchangeTimeoutMs ?? 10_000,
    retryAfter: String(options.retryAfterSeconds ?? 5),
    log: options.log ?? (() => undefined),
  };
  const server = createServer((req, res) => {
    const started = Date.now();
    handle(req, options.broker, settings).then(
      (reply) => {
        send(res, reply);
        settings.log({ event: 'sign_in_request', status: reply.status, outcome: reply.body.error ?? 'OK', ms: Date.now() - started });
      },
      (err: unknown) => {
        // A bug of ours: the error's name only, since a message could quote input.
        settings.log({ event: 'sign_in_request', status: 500, outcome: 'INTERNAL', cause: err instanceof Error ? err.name : typeof err });
        send(res, failure(500, 'INTERNAL'));
      },
    );
  });
  // Slow clients must not hold connections open for long.
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  return server;
}

async function handle(
  req: IncomingMessage,
  broker: GatewayOptions['broker'],
  settings: { maxBodyBytes: number; exchangeTimeoutMs: number; retryAfter: string; log: (event: Record<string, unknown>) => void },
): Promise<Reply> {
  const url = new URL(req.url ?? '/', 'http://gateway');
  if (url.pathname !== SIGN_IN_PATH) return failure(404, 'NOT_FOUND');
  if (req.method !== 'POST') return failure(405, 'METHOD_NOT_ALLOWED', { allow: 'POST' });
  // Google's guidance for receiving auth codes: require X-Requested-With. A
  // browser cannot send a custom header cross-site without a CORS preflight,
  // which this server never approves, so a forged form post from another
  // site is refused here.
  if (!req.headers['x-requested-with']) return failure(403, 'X_REQUESTED_WITH_REQUIRED');
  const mediaType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (mediaType !== 'application/json') return failure(415, 'UNSUPPORTED_MEDIA_TYPE');

  const body = await readBody(req, settings.maxBodyBytes);
  if (body === 'too-large') return failure(413, 'BODY_TOO_LARGE');
  const code = serverAuthCode(body);
  if (code === undefined) return failure(400, 'INVALID_REQUEST');

  let exchanged: ExchangeCodeResponse;
  try {
    // redirect_uri stays empty: the code came from a mobile app's Google Sign-In.
    exchanged = await broker.exchangeCode({ authCode: code, redirectUri: '' }, { timeoutMs: settings.exchangeTimeoutMs });
  } catch (err: unknown) {
    const reply = brokerFailure(err, settings.retryAfter);
    settings.log({
      event: 'exchange_failed',
      grpcCode: isServiceError(err) ? status[err.code] : undefined,
      reason: isServiceError(err) ? safeReason(err) : undefined,
      status: reply.status,
    });
    return reply;
  }
  const profile = exchanged.profile;
  return {
    status: 200,
    body: {
      userId: exchanged.userId,
      created: exchanged.created,
      grantedScopes: exchanged.grantedScopes,
      profile: profile && {
        email: profile.email,
        emailVerified: profile.emailVerified,
        name: profile.name,
        givenName: profile.givenName,
        familyName: profile.familyName,
        pictureUrl: profile.pictureUrl,
      },
    },
  };
}

/**
 * Maps a failed ExchangeCode to what the app is told. Only the reason name
 * crosses over: the broker's message is for operators.
 */
function brokerFailure(err: unknown, retryAfter: string): Reply {
  if (!isServiceError(err)) return failure(500, 'INTERNAL');
  const reason = safeReason(err);
  switch (reason) {
    // The code is spent, expired or not ours: the app starts sign-in again.
    case 'INVALID_AUTH_CODE':
    case 'INVALID_ID_TOKEN':
    case 'INVALID_REQUEST':
      return failure(400, reason);
    // Google sent no refresh token and none is stored: sign in again showing the consent screen.
    case 'CONSENT_REQUIRED':
    case 'REAUTH_REQUIRED':
      return failure(409, reason);
    // Google or Firestore failed, or the broker's own time budget ran out:
    // retrying later with the same code is safe, since ExchangeCode replays
    // its first answer for ten minutes.
    case 'UPSTREAM_UNAVAILABLE':
    case 'STORE_UNAVAILABLE':
    case 'DEADLINE_EXCEEDED':
      return failure(503, 'UNAVAILABLE', { 'retry-after': retryAfter });
    case undefined:
      // No ErrorInfo: the broker could not be reached, or this call's deadline passed.
      if (err.code === status.UNAVAILABLE || err.code === status.DEADLINE_EXCEEDED) {
        return failure(503, 'UNAVAILABLE', { 'retry-after': retryAfter });
      }
      return failure(500, 'INTERNAL');
    default:
      // UNAUTHENTICATED / PERMISSION_DENIED (the gateway's identity or the
      // broker's policy is misconfigured), OAUTH_CLIENT_REJECTED, ...: the
      // app can do nothing about these; operators see them in the log.
      return failure(500, 'INTERNAL');
  }
}

/** The ErrorInfo reason of a TokenBroker error; undefined when absent or undecodable. */
function safeReason(err: Parameters<typeof errorInfoOf>[0]): string | undefined {
  try {
    const info = errorInfoOf(err);
    return info?.domain === 'tokenbroker.v1' ? info.reason : undefined;
  } catch {
    return undefined;
  }
}

/** The `serverAuthCode` of a JSON body: a non-empty printable string of at most 2048 characters. */
function serverAuthCode(body: Buffer): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const code: unknown = (parsed as Record<string, unknown>).serverAuthCode;
  return typeof code === 'string' && /^[\x21-\x7e]{1,2048}$/.test(code) ? code : undefined;
}

/** Reads the request body, stopping as soon as it exceeds `limit` bytes. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | 'too-large'> {
  if (Number(req.headers['content-length'] ?? 0) > limit) {
    req.resume();
    return Promise.resolve('too-large');
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        resolve('too-large');
      } else {
        chunks.push(chunk);
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, reply: Reply): void {
  if (res.headersSent) return;
  const body = JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(body),
    ...reply.headers,
  });
  res.end(body);
}
