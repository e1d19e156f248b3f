import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';

/** Stands in for a request whose bytes are not a valid message. */
const UNDECODABLE: unknown = Object.freeze({});

/**
 * A copy of `service` whose request decoders never throw: bytes that do not
 * decode become a marker the handler answers with INVALID_ARGUMENT. grpc-js
 * would otherwise answer INTERNAL itself, blaming the server for bad input,
 * without the handler (or its log line) ever seeing the call.
 */
export function tolerantRequests<S extends ServiceDefinition>(service: S): S {
  const copy: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(service)) {
    copy[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          return method.requestDeserialize(bytes);
        } catch {
          return UNDECODABLE;
        }
      },
    };
  }
  return copy as S;
}

/** True for the marker {@link tolerantRequests} puts in place of an undecodable request. */
export function isUndecodable(request: unknown): boolean {
  return request === UNDECODABLE;
}
