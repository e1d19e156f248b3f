/**
 * The baseline: a bare grpc-js server (default options) with TokenBroker's
 * own generated service definition that answers GetAccessToken with one
 * fixed message from memory. It reads nothing of the request and checks no
 * credential. Run as a child process, like the broker:
 * `node --require tsx/cjs bench/servers/echo-server.ts`, with
 * BENCH_ECHO_RESPONSE = {"accessToken","expireTimeMs","scopes"}.
 * Prints {"event":"listening","port":N} once bound to 127.0.0.1:0.
 */
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { TokenBrokerServiceService, type GetAccessTokenResponse, type TokenBrokerServiceServer } from '../../src/gen/tokenbroker/v1/token_broker';

interface EchoSpec {
  accessToken: string;
  expireTimeMs: number;
  scopes: string[];
}

function main(): void {
  const spec = JSON.parse(process.env.BENCH_ECHO_RESPONSE ?? '') as EchoSpec;
  const response: GetAccessTokenResponse = { accessToken: spec.accessToken, expireTime: new Date(spec.expireTimeMs), scopes: spec.scopes };
  const server = new Server();
  // Only GetAccessToken: grpc-js answers UNIMPLEMENTED for every other method of the service.
  const implementation: Pick<TokenBrokerServiceServer, 'getAccessToken'> = {
    getAccessToken: (_call, callback) => callback(null, response),
  };
  server.addService(TokenBrokerServiceService, implementation);
  server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => {
    if (err) throw err;
    process.stdout.write(`${JSON.stringify({ event: 'listening', port })}\n`);
  });
  process.once('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
}

main();
