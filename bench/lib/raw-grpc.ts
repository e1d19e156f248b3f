/**
 * gRPC over plain node:http2, byte for byte what h2load sends: used to probe
 * a server before a load run (grpc-status and the exact response frame size)
 * and to poll grpc.health.v1 during a cold start without grpc-js's
 * reconnect backoff.
 */
import { connect, constants, type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2';

/** What one raw unary call returned. */
export interface RawReply {
  httpStatus: number;
  /** grpc-status from the trailers (or a trailers-only response); -1 when absent. */
  grpcStatus: number;
  grpcMessage: string;
  /** Every DATA byte received: the length-prefixed response message(s). */
  data: Buffer;
}

/** A gRPC length-prefixed message: 1 byte 0 (not compressed), 4-byte big-endian length, the bytes. */
export function frame(message: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** The message inside the first frame of `data` (undefined when incomplete). */
export function unframe(data: Buffer): Buffer | undefined {
  if (data.length < 5) return undefined;
  const length = data.readUInt32BE(1);
  return data.length >= 5 + length ? data.subarray(5, 5 + length) : undefined;
}

/** The request headers every load run sends (h2load -H), apart from the pseudo-headers. */
export function grpcHeaders(authorization: string | undefined): Record<string, string> {
  const headers: Record<string, string> = { 'content-type': 'application/grpc', te: 'trailers' };
  if (authorization !== undefined) headers.authorization = authorization;
  return headers;
}

/** Opens an HTTP/2 session to 127.0.0.1:`port`; rejects on connection failure. */
export function openSession(port: number, timeoutMs: number): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://127.0.0.1:${port}`);
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`no HTTP/2 connection to 127.0.0.1:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    session.once('connect', () => {
      clearTimeout(timer);
      session.removeAllListeners('error');
      session.on('error', () => undefined);
      resolve(session);
    });
    session.once('error', (err) => {
      clearTimeout(timer);
      session.destroy();
      reject(err);
    });
  });
}

/** One unary call on `session` with the exact `body` (already framed) and `headers`. */
export function rawUnary(session: ClientHttp2Session, path: string, body: Buffer, headers: Record<string, string>, timeoutMs: number): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const outgoing: OutgoingHttpHeaders = { [constants.HTTP2_HEADER_METHOD]: 'POST', [constants.HTTP2_HEADER_PATH]: path, ...headers };
    const stream = session.request(outgoing, { endStream: false });
    const chunks: Buffer[] = [];
    let httpStatus = 0;
    let grpcStatus = -1;
    let grpcMessage = '';
    const timer = setTimeout(() => {
      stream.close(constants.NGHTTP2_CANCEL);
      reject(new Error(`${path}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const readStatus = (h: Record<string, unknown>) => {
      if (h['grpc-status'] !== undefined) grpcStatus = Number(h['grpc-status']);
      if (typeof h['grpc-message'] === 'string') grpcMessage = decodeURIComponent(h['grpc-message']);
    };
    stream.on('response', (h) => {
      httpStatus = Number(h[constants.HTTP2_HEADER_STATUS]);
      readStatus(h);
    });
    stream.on('trailers', (h) => readStatus(h));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    stream.on('close', () => {
      clearTimeout(timer);
      resolve({ httpStatus, grpcStatus, grpcMessage, data: Buffer.concat(chunks) });
    });
    stream.end(body);
  });
}

/** One call on a fresh connection, closed afterwards. */
export async function rawUnaryOnce(port: number, path: string, body: Buffer, headers: Record<string, string>, timeoutMs = 5000): Promise<RawReply> {
  const session = await openSession(port, timeoutMs);
  try {
    return await rawUnary(session, path, body, headers, timeoutMs);
  } finally {
    session.close();
  }
}

/** grpc.health.v1.Health/Check for the whole server: true when it answers SERVING. */
export async function isServing(port: number, timeoutMs = 1000): Promise<boolean> {
  // HealthCheckRequest{service: ''} encodes to zero bytes; SERVING is field 1 = 1.
  const reply = await rawUnaryOnce(port, '/grpc.health.v1.Health/Check', frame(new Uint8Array(0)), grpcHeaders(undefined), timeoutMs);
  const message = unframe(reply.data);
  return reply.grpcStatus === 0 && message !== undefined && message.equals(Buffer.from([0x08, 0x01]));
}
