import { credentials as grpcCredentials, loadPackageDefinition, type ChannelCredentials, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath } from 'grpc-health-check';

/** Serving states of grpc.health.v1. */
export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

type HealthStub = Client & {
  check(req: { service: string }, opts: { deadline: Date }, cb: (err: ServiceError | null, res?: { status: ServingStatus }) => void): void;
};

/**
 * Asks a server's grpc.health.v1 service for the status of `service`
 * ('' = the whole server), as Kubernetes' gRPC probe does.
 */
export async function checkHealth(
  address: string,
  service = '',
  options: { timeoutMs?: number; credentials?: ChannelCredentials } = {},
): Promise<ServingStatus> {
  const definition = loadSync(protoPath, { keepCase: true, enums: String });
  const pkg = loadPackageDefinition(definition) as unknown as {
    grpc: { health: { v1: { Health: new (address: string, creds: ChannelCredentials) => HealthStub } } };
  };
  const client = new pkg.grpc.health.v1.Health(address, options.credentials ?? grpcCredentials.createInsecure());
  try {
    return await new Promise<ServingStatus>((resolve, reject) => {
      client.check({ service }, { deadline: new Date(Date.now() + (options.timeoutMs ?? 5000)) }, (err, res) =>
        err ? reject(err) : resolve(res?.status ?? 'UNKNOWN'),
      );
    });
  } finally {
    client.close();
  }
}
