import { Client, credentials, Metadata, type ServiceError, type status } from '@grpc/grpc-js';
import { errorInfoOf } from '../../src/client/error-info';

/** How a call made by {@link RawGrpcClient} ended. */
export interface RawCallResult {
  code: status;
  details: string;
  /** The ErrorInfo reason of an error, when it carried one. */
  reason?: string;
  /** The ErrorInfo metadata of an error, when it carried one. */
  metadata?: Record<string, string>;
  /** The response message bytes of a successful call. */
  response?: Buffer;
}

/**
 * A gRPC client that sends request bytes exactly as given and hands back the
 * response bytes undecoded: for requests no typed client can produce
 * (malformed framing, invalid UTF-8 in string fields, wrong wire types).
 */
export class RawGrpcClient {
  private readonly client: Client;

  /** @param address host:port of the server, plaintext */
  constructor(address: string) {
    this.client = new Client(address, credentials.createInsecure());
  }

  /** Calls unary method `path` (`/package.Service/Method`) with `message` as the request bytes. */
  unary(path: string, message: Uint8Array, timeoutMs = 10_000): Promise<RawCallResult> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest<Buffer, Buffer>(
        path,
        (request) => request,
        (response) => response,
        Buffer.from(message),
        new Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err: ServiceError | null, response?: Buffer) => {
          try {
            if (!err) {
              resolve({ code: 0, details: '', response });
              return;
            }
            const info = errorInfoOf(err);
            resolve({ code: err.code, details: err.details, reason: info?.reason, metadata: info?.metadata });
          } catch (decodeError: unknown) {
            reject(decodeError instanceof Error ? decodeError : new Error(String(decodeError)));
          }
        },
      );
    });
  }

  /** Closes the channel. */
  close(): void {
    this.client.close();
  }
}
