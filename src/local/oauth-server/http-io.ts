import type { IncomingMessage, ServerResponse } from 'node:http';

/** A response decided before it is written, so a delay fault can hold it back. */
export interface JsonReply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** Thrown when a request body exceeds the limit; the server answers 413. */
export class BodyTooLargeError extends Error {
  constructor(limit: number) {
    super(`request body exceeds ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

/** Reads the whole body, refusing more than `limitBytes` so a runaway client cannot exhaust memory. */
export async function readBody(req: IncomingMessage, limitBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > limitBytes) {
      throw new BodyTooLargeError(limitBytes);
    }
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The media type without parameters, lower-cased. */
export function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

/** Writes `reply` as JSON unless the client has already gone. */
export function writeJson(res: ServerResponse, reply: JsonReply): void {
  if (res.destroyed || res.headersSent) {
    return;
  }
  const body = JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body).toString(),
    ...reply.headers,
  });
  res.end(body);
}

/** Writes a raw body with the given content type, for replies that must not be valid JSON. */
export function writeRaw(res: ServerResponse, status: number, contentType: string, body: string): void {
  if (res.destroyed || res.headersSent) {
    return;
  }
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body).toString() });
  res.end(body);
}
