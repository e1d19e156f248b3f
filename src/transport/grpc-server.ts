import { Server, ServerCredentials } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import path from 'node:path';
import type { TokenBroker } from '../domain/token-broker';
import { TokenBrokerServiceService } from '../gen/tokenbroker/v1/token_broker';
import { InFlightCalls } from './in-flight-calls';
import { sendEncodedResponses } from './encoded-responses';
import { tokenBrokerService, type CallContext } from './token-broker-service';
import { tolerantRequests } from './undecodable-request';

/** Fully qualified name of the service, as health checks name it. */
export const SERVICE_NAME = 'tokenbroker.v1.TokenBrokerService';

/** The proto/ folder; two levels up from both src/transport and dist/transport. */
const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');

/**
 * Connection limits, documented in the README's "Server limits":
 * - requests are a few KiB at most, so anything over 64 KiB is refused
 *   (RESOURCE_EXHAUSTED) before it costs memory;
 * - 1,000 concurrent calls per connection bound what one client can pin;
 * - idle connections are pinged every minute and dropped after 20 s without
 *   an answer, and closed after 5 idle minutes;
 * - every connection is retired after 30 minutes (30 s to finish its calls)
 *   so clients spread over new replicas after a scale-up;
 * - channelz (per-call bookkeeping for grpc-js's debug service, which this
 *   server does not expose) is off: it cost ~5% of the hot path's CPU.
 */
const SERVER_OPTIONS = {
  'grpc.max_receive_message_length': 64 * 1024,
  'grpc.max_concurrent_streams': 1000,
  'grpc.keepalive_time_ms': 60_000,
  'grpc.keepalive_timeout_ms': 20_000,
  'grpc.max_connection_idle_ms': 5 * 60_000,
  'grpc.max_connection_age_ms': 30 * 60_000,
  'grpc.max_connection_age_grace_ms': 30_000,
  'grpc.enable_channelz': 0,
};

/** A built, not yet listening, gRPC server with its health service. */
export interface GrpcServer {
  server: Server;
  health: HealthImplementation;
  /** Unary calls being handled, for the shutdown. */
  inFlight: InFlightCalls;
}

/**
 * Builds the gRPC server: TokenBrokerService, grpc.health.v1 (NOT_SERVING
 * until {@link listen} finishes) and server reflection.
 */
export function createGrpcServer(broker: TokenBroker, context: Omit<CallContext, 'inFlight'>): GrpcServer {
  const server = new Server(SERVER_OPTIONS);
  const inFlight = new InFlightCalls();
  server.addService(sendEncodedResponses(tolerantRequests(TokenBrokerServiceService)), tokenBrokerService(broker, { ...context, inFlight }));
  const health = new HealthImplementation({ '': 'NOT_SERVING', [SERVICE_NAME]: 'NOT_SERVING' });
  health.addToServer(server);
  const definition = loadSync(path.join(PROTO_ROOT, 'tokenbroker/v1/token_broker.proto'), { includeDirs: [PROTO_ROOT] });
  new ReflectionService(definition).addToServer(server);
  return { server, health, inFlight };
}

/**
 * Binds `server` and resolves with the bound port. Plaintext when TLS is the
 * mesh's or Cloud Run's; mutual TLS when the broker authenticates callers by
 * client certificate.
 */
export function listen(server: Server, host: string, port: number, serverCredentials: ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, serverCredentials, (err, bound) => (err ? reject(err) : resolve(bound)));
  });
}

/** A server answering only grpc.health.v1 from `health` (the main server's statuses, shutdown included). */
export function healthOnlyServer(health: HealthImplementation): Server {
  const server = new Server(SERVER_OPTIONS);
  health.addToServer(server);
  return server;
}

/**
 * Stops serving like a good citizen: health goes NOT_SERVING, no new calls
 * are accepted, calls in flight may finish for `graceMs`, and those still
 * running then are answered UNAVAILABLE (callers retry on another replica)
 * before the connections close. Resolves with the number of calls cut.
 */
export async function shutdown({ server, health, inFlight }: GrpcServer, graceMs: number): Promise<number> {
  health.setStatus('', 'NOT_SERVING');
  health.setStatus(SERVICE_NAME, 'NOT_SERVING');
  let cut = 0;
  await new Promise<void>((resolve) => {
    const deadline = setTimeout(() => {
      cut = inFlight.cutAll();
      // Answers just written need a moment to flush before sockets are destroyed.
      setTimeout(() => server.forceShutdown(), 500).unref();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(deadline);
      resolve();
    });
  });
  return cut;
}
