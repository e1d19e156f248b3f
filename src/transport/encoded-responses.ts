import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';

/**
 * A response encoded in advance and sent as these bytes however often (a
 * cached token's answer). A handler returns it in place of its message.
 */
export type EncodedResponse<T> = Buffer & { readonly encodes?: T };

/**
 * Encodes `response` with `method`'s own encoder, into a buffer of its own:
 * small Buffers are slices of a shared 8 KiB pool, and holding one would
 * hold its whole pool. The message itself need not be kept.
 */
export function encodeResponse<T>(method: { responseSerialize: (value: T) => Buffer }, response: T): EncodedResponse<T> {
  const fresh = method.responseSerialize(response);
  const own = Buffer.allocUnsafeSlow(fresh.length);
  fresh.copy(own);
  return own;
}

/** `encoded`, typed as the message it encodes, for a handler to return. */
export function asMessage<T>(encoded: EncodedResponse<T>): T {
  return encoded as unknown as T;
}

/**
 * A copy of `service` whose response encoders send an {@link EncodedResponse}
 * as it is (grpc-js copies the bytes into each call's frame) and encode every
 * other response as before. A message is never a Buffer.
 */
export function sendEncodedResponses<S extends ServiceDefinition>(service: S): S {
  const copy: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(service)) {
    copy[name] = {
      ...method,
      responseSerialize: (value: unknown): Buffer => (Buffer.isBuffer(value) ? value : method.responseSerialize(value)),
    };
  }
  return copy as S;
}
