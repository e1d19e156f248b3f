import { readFileSync } from 'node:fs';
import { googleIdTokenSource, mutualTlsCredentials } from '../../src/client/caller-credentials';
import { TokenBrokerClient, type TokenBrokerClientOptions } from '../../src/client/token-broker-client';
import { createGatewayServer } from './gateway';

// Entry point of the example gateway, a program of its own: the only file of
// it that reads the environment.
//   PORT                        listen port (default 8080; Cloud Run sets it)
//   TOKENBROKER_ADDRESS         host:port of TokenBroker (required)
//   TOKENBROKER_AUDIENCE        call with a Google ID token for this audience (the
//                               broker's TOKENBROKER_CALLER_AUDIENCE), minted for
//                               the gateway's service account
//   TOKENBROKER_TLS_CA / _CERT / _KEY
//                               PEM files for mutual TLS, when the broker runs with
//                               TOKENBROKER_CALLER_AUTH=mtls
// With neither, the channel is plaintext and the identity is the mesh's.

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`${name} must be set`);
  return value;
}

function brokerOptions(): TokenBrokerClientOptions {
  const options: TokenBrokerClientOptions = {
    defaultTimeoutMs: 10_000,
    // UNAVAILABLE only; a retried ExchangeCode gets the first attempt's answer.
    retry: { attempts: 2, backoffMs: 100 },
  };
  const audience = process.env.TOKENBROKER_AUDIENCE;
  if (audience) options.idToken = googleIdTokenSource(audience);
  const cert = process.env.TOKENBROKER_TLS_CERT;
  if (cert) {
    const ca = process.env.TOKENBROKER_TLS_CA;
    options.credentials = mutualTlsCredentials({
      ca: ca ? readFileSync(ca) : undefined,
      cert: readFileSync(cert),
      key: readFileSync(required('TOKENBROKER_TLS_KEY')),
    });
  }
  return options;
}

const broker = new TokenBrokerClient(required('TOKENBROKER_ADDRESS'), brokerOptions());
const server = createGatewayServer({
  broker,
  log: (event) => process.stdout.write(`${JSON.stringify({ severity: 'INFO', time: new Date().toISOString(), ...event })}\n`),
});
server.listen(Number(process.env.PORT ?? 8080), '0.0.0.0');

process.once('SIGTERM', () => {
  server.close(() => broker.close());
  server.closeIdleConnections();
});
