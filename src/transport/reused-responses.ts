import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';

/** Responses the handlers send more than once, unchanged (a cached token's answer). */
const reusable = new WeakSet<object>();
/** Their encoding, made on first send and dropped with the response. */
const encoded = new WeakMap<object, Buffer>();

/**
 * Marks `response` as sent again and again without change, so
 * {@link encodeReusedResponsesOnce} encodes it once. The caller must never
 * modify it afterwards.
 */
export function reusedResponse<T extends object>(response: T): T {
  reusable.add(response);
  return response;
}

/**
 * A copy of `service` whose response encoders keep the bytes of responses
 * marked with {@link reusedResponse}: every cache hit for one token answers
 * the same message, and grpc-js copies the bytes into each call's frame.
 */
export function encodeReusedResponsesOnce<S extends ServiceDefinition>(service: S): S {
  const copy: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(service)) {
    copy[name] = {
      ...method,
      responseSerialize: (value: unknown): Buffer => {
        if (typeof value !== 'object' || value === null || !reusable.has(value)) return method.responseSerialize(value);
        let bytes = encoded.get(value);
        if (bytes === undefined) {
          // A copy of its own: small Buffers are slices of a shared 8 KiB
          // pool, and keeping one would keep its whole pool alive.
          const fresh = method.responseSerialize(value);
          bytes = Buffer.allocUnsafeSlow(fresh.length);
          fresh.copy(bytes);
          encoded.set(value, bytes);
        }
        return bytes;
      },
    };
  }
  return copy as S;
}
