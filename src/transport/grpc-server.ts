import { Server, ServerCredentials } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import path from 'node:path';
import type { TokenBroker } from '../domain/token-broker';
import { TokenBrokerServiceService } from '../gen/tokenbroker/v1/token_broker';
import type { Logger } from '../observability/logger';
import { tokenBrokerService } from './token-broker-service';

/** Fully qualified name of the service, as health checks name it. */
export const SERVICE_NAME = 'tokenbroker.v1.TokenBrokerService';

/** The proto/ folder; two levels up from both src/transport and dist/transport. */
const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');

/** Largest request we accept: our requests are a few KiB at most. */
const MAX_RECEIVE_BYTES = 64 * 1024;

/** A built, not yet listening, gRPC server with its health service. */
export interface GrpcServer {
  server: Server;
  health: HealthImplementation;
}

/**
 * Builds the gRPC server: TokenBrokerService, grpc.health.v1 (NOT_SERVING
 * until {@link listen} finishes) and server reflection.
 */
export function createGrpcServer(broker: TokenBroker, logger: Logger): GrpcServer {
  const server = new Server({ 'grpc.max_receive_message_length': MAX_RECEIVE_BYTES });
  server.addService(TokenBrokerServiceService, tokenBrokerService(broker, logger));
  const health = new HealthImplementation({ '': 'NOT_SERVING', [SERVICE_NAME]: 'NOT_SERVING' });
  health.addToServer(server);
  const definition = loadSync(path.join(PROTO_ROOT, 'tokenbroker/v1/token_broker.proto'), { includeDirs: [PROTO_ROOT] });
  new ReflectionService(definition).addToServer(server);
  return { server, health };
}

/** Binds `server` (plaintext: TLS is the mesh's or Cloud Run's) and resolves with the bound port. */
export function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound)));
  });
}
