import { loadPackageDefinition, credentials, status, type Client, type ClientDuplexStream } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { expect } from 'chai';
import path from 'node:path';
import { checkHealth } from '../src/client/health-client';
import { isServiceError } from '../src/client/error-info';
import { TestStack } from './support/stack';
import { waitFor } from './support/wait-for';

type ReflectionStub = Client & {
  ServerReflectionInfo(): ClientDuplexStream<{ list_services: string }, { list_services_response?: { service: Array<{ name: string }> } }>;
};

async function listServices(address: string): Promise<string[]> {
  const protoFile = path.join(path.dirname(require.resolve('@grpc/reflection/package.json')), 'build/proto/grpc/reflection/v1/reflection.proto');
  const pkg = loadPackageDefinition(loadSync(protoFile, { keepCase: true })) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: new (a: string, c: ReturnType<typeof credentials.createInsecure>) => ReflectionStub } } };
  };
  const client = new pkg.grpc.reflection.v1.ServerReflection(address, credentials.createInsecure());
  try {
    return await new Promise((resolve, reject) => {
      const call = client.ServerReflectionInfo();
      call.on('data', (res) => {
        resolve((res.list_services_response?.service ?? []).map((s: { name: string }) => s.name));
        call.end();
      });
      call.on('error', reject);
      call.write({ list_services: '*' });
    });
  } finally {
    client.close();
  }
}

describe('gRPC server', () => {
  let stack: TestStack;
  let address: string;
  before(async () => {
    stack = await TestStack.start();
    address = `127.0.0.1:${stack.app.port}`;
  });
  after(async () => {
    await stack.close();
  });

  it('reports SERVING on grpc.health.v1 for the server and the service', async () => {
    expect(await checkHealth(address)).to.equal('SERVING');
    expect(await checkHealth(address, 'tokenbroker.v1.TokenBrokerService')).to.equal('SERVING');
  });

  it('lists its services through server reflection', async () => {
    const services = await listServices(address);
    expect(services).to.include('tokenbroker.v1.TokenBrokerService');
  });

  it('refuses an oversized request with RESOURCE_EXHAUSTED', async () => {
    const err = await stack.client.exchangeCode({ authCode: 'x'.repeat(100_000) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isServiceError(err) && err.code).to.equal(status.RESOURCE_EXHAUSTED);
  });

  it('stops gracefully: health NOT_SERVING, then the port refuses calls', async () => {
    const other = await TestStack.start({ env: { TOKENBROKER_SHUTDOWN_GRACE_MS: '10000' } });
    const otherAddress = `127.0.0.1:${other.app.port}`;
    const user = other.newUser();
    other.google.injectFault({ endpoint: 'token', kind: 'delay', ms: 300 });
    const pending = other.signIn(user);
    await waitFor(() => other.google.stats().token === 1, 'the call to reach Google'); // in flight inside the broker
    const stopped = other.app.stop();
    expect(await checkHealth(otherAddress).catch(() => 'gone')).to.be.oneOf(['NOT_SERVING', 'gone']);
    await stopped;
    expect((await pending).userId).to.equal(user.sub); // the in-flight call finished
    await other.close();
    const err = await checkHealth(otherAddress, '', { timeoutMs: 1000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isServiceError(err) && err.code).to.be.oneOf([status.UNAVAILABLE, status.DEADLINE_EXCEEDED]);
  });
});
