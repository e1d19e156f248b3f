import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { closeHttp, listenHttp } from '../../transport/http-server';
import { isBrokerError } from '../../domain/broker-error';
import type { ProcessResult, VerifiedSecurityEventToken } from '../../domain/security-events';
import { describeError } from '../../observability/describe-error';
import type { Logger } from '../../observability/logger';
import { RiscKeysUnavailableError } from './risc-signing-keys';
import { SetRejectedError } from './security-event-token-verifier';

/** The path Google pushes to (the receiver URL registered with stream:update ends with it). */
export const RISC_PATH = '/risc';
/** A plain GET for load balancer health checks. */
export const RISC_HEALTH_PATH = '/healthz';

/** Options of {@link RiscReceiver}. */
export interface RiscReceiverOptions {
  /** Largest body accepted (413 above). */
  maxBodyBytes: number;
  /** A request (headers and body) must arrive within this (408 after). */
  requestTimeoutMs: number;
}

/** What the receiver needs: a verifier and the event processor. */
export interface RiscReceiverDeps {
  verifier: { verify(compact: string): Promise<VerifiedSecurityEventToken> };
  processor: { process(token: VerifiedSecurityEventToken): Promise<ProcessResult> };
  logger: Logger;
}

class BodyTooLarge extends Error {}

/**
 * The HTTP endpoint Google's Cross-Account Protection pushes Security Event
 * Tokens to (RFC 8935): `POST /risc` with the token as body. Answers 202
 * once the token is verified and processed (a replay or an event type we do
 * not act on included), 400 `{"err","description"}` for an invalid token
 * (never echoing it), 503 when the store or the key set is unavailable so
 * Google retries, 413 / 405 / 404 / 408 for the rest.
 */
export class RiscReceiver {
  private constructor(
    private readonly server: Server,
    /** The bound port. */
    readonly port: number,
  ) {}

  /** Starts listening on `host:port` (0: any free port). */
  static async start(host: string, port: number, deps: RiscReceiverDeps, options: RiscReceiverOptions): Promise<RiscReceiver> {
    const server = createServer({ requestTimeout: options.requestTimeoutMs, headersTimeout: Math.min(options.requestTimeoutMs, 60_000) });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      handle(req, res, deps, options).catch((err: unknown) => {
        deps.logger.error({ event: 'security_event_failed', error: describeError(err) }, 'the security event receiver failed');
        reply(res, 500, { err: 'internal_error', description: 'internal error' });
      });
    });
    return new RiscReceiver(server, await listenHttp(server, host, port));
  }

  /** Stops accepting requests and closes every connection. */
  close(): Promise<void> {
    return closeHttp(this.server);
  }
}

async function handle(req: IncomingMessage, res: ServerResponse, deps: RiscReceiverDeps, options: RiscReceiverOptions): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (path === RISC_HEALTH_PATH && (req.method === 'GET' || req.method === 'HEAD')) {
    reply(res, 200, { status: 'ok' });
    return;
  }
  if (path !== RISC_PATH) {
    reply(res, 404, { err: 'not_found', description: 'not found' });
    return;
  }
  if (req.method !== 'POST') {
    reply(res, 405, { err: 'method_not_allowed', description: 'use POST' }, { allow: 'POST' });
    return;
  }
  let body: string;
  try {
    body = await readBody(req, options.maxBodyBytes);
  } catch (err: unknown) {
    if (err instanceof BodyTooLarge) {
      // The rest of the body is not read: close the connection after answering.
      reply(res, 413, { err: 'invalid_request', description: `the body exceeds ${options.maxBodyBytes} bytes` }, { connection: 'close' });
      return;
    }
    throw err;
  }
  let token: VerifiedSecurityEventToken;
  try {
    token = await deps.verifier.verify(body);
  } catch (err: unknown) {
    if (err instanceof SetRejectedError) {
      deps.logger.warn({ event: 'security_event_rejected', err: err.code, reason: err.message }, 'refused a security event token');
      reply(res, 400, { err: err.code, description: err.message });
      return;
    }
    if (err instanceof RiscKeysUnavailableError) {
      deps.logger.error({ event: 'security_event_keys_unavailable', error: describeError(err) }, 'the RISC signing keys could not be read; Google will retry');
      reply(res, 503, { err: 'temporarily_unavailable', description: 'try again later' }, { 'retry-after': '60' });
      return;
    }
    throw err;
  }
  try {
    await deps.processor.process(token);
  } catch (err: unknown) {
    if (isBrokerError(err, 'STORE_UNAVAILABLE')) {
      deps.logger.error({ event: 'security_event_deferred', jti: token.jti, error: describeError(err) }, 'the store is unavailable; Google will retry the event');
      reply(res, 503, { err: 'temporarily_unavailable', description: 'try again later' }, { 'retry-after': '30' });
      return;
    }
    throw err;
  }
  res.writeHead(202, { 'content-length': '0' });
  res.end();
}

/**
 * Reads the body as text, failing with BodyTooLarge past `limit` bytes
 * (announced or actual). The request is left open so the 413 can still be
 * written; its `connection: close` then ends the socket.
 */
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const announced = Number(req.headers['content-length']);
  if (Number.isFinite(announced) && announced > limit) return Promise.reject(new BodyTooLarge());
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.off('end', onEnd);
        // Keep reading into nothing until the socket closes, so the peer is not blocked writing.
        req.resume();
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => resolve(Buffer.concat(chunks).toString('utf8'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.once('error', reject);
  });
}

function reply(res: ServerResponse, status: number, body: Record<string, string>, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text).toString(), ...headers });
  res.end(text);
}
