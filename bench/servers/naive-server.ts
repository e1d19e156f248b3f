/**
 * The "no broker" baseline: GetAccessToken written the way a team would
 * without TokenBroker. Every call reads the user's grant from Firestore,
 * decrypts the refresh token, and asks Google (here the local OAuth server)
 * for an access token with a fresh google-auth-library OAuth2Client. No
 * caller authentication (which only flatters it). Run as a child process:
 * `node --require tsx/cjs bench/servers/naive-server.ts` with
 * BENCH_NAIVE_CONFIG (see NaiveConfig). Prints {"event":"listening","port":N};
 * on SIGUSR2 prints {"event":"stats","ok":N,"errors":N}.
 */
import { Firestore } from '@google-cloud/firestore';
import { Server, ServerCredentials, status } from '@grpc/grpc-js';
import { OAuth2Client } from 'google-auth-library';
import { readFileSync } from 'node:fs';
import { parseKeyset } from '../../src/crypto/keyset';
import { Sealer } from '../../src/crypto/sealer';
import { REFRESH_TOKEN_FIELD } from '../../src/domain/grant';
import {
  TokenBrokerServiceService,
  type GetAccessTokenRequest,
  type GetAccessTokenResponse,
  type TokenBrokerServiceServer,
} from '../../src/gen/tokenbroker/v1/token_broker';

interface NaiveConfig {
  emulatorHost: string;
  projectId: string;
  collection: string;
  keysetFile: string;
  clientId: string;
  clientSecret: string;
  tokenUrl: string;
}

function main(): void {
  const config = JSON.parse(process.env.BENCH_NAIVE_CONFIG ?? '') as NaiveConfig;
  const [host, port] = config.emulatorHost.split(':');
  const db = new Firestore({
    projectId: config.projectId,
    host,
    port: Number(port),
    ssl: false,
    customHeaders: { Authorization: 'Bearer owner' },
    universeDomain: 'googleapis.com',
  });
  const sealer = new Sealer(parseKeyset(readFileSync(config.keysetFile, 'utf8'), 'keyset'));
  let ok = 0;
  let errors = 0;

  async function getAccessToken(request: GetAccessTokenRequest): Promise<GetAccessTokenResponse> {
    const data = (await db.collection(config.collection).doc(request.userId).get()).data();
    if (!data) throw Object.assign(new Error('no such user'), { code: status.NOT_FOUND });
    const box = data.refresh_token as { key_id: string; iv: Buffer; ciphertext: Buffer };
    const refreshToken = sealer.open({ keyId: box.key_id, iv: box.iv, ciphertext: box.ciphertext }, Sealer.context(request.userId, REFRESH_TOKEN_FIELD));
    const client = new OAuth2Client({ clientId: config.clientId, clientSecret: config.clientSecret, endpoints: { oauth2TokenUrl: config.tokenUrl } });
    client.setCredentials({ refresh_token: refreshToken });
    const { token } = await client.getAccessToken();
    if (!token) throw new Error('no access token');
    return { accessToken: token, expireTime: new Date(client.credentials.expiry_date ?? Date.now()), scopes: request.scopes };
  }

  const server = new Server();
  // Only GetAccessToken: grpc-js answers UNIMPLEMENTED for every other method of the service.
  const implementation: Pick<TokenBrokerServiceServer, 'getAccessToken'> = {
    getAccessToken: (call, callback) => {
      getAccessToken(call.request).then(
        (response) => {
          ok += 1;
          callback(null, response);
        },
        (err: unknown) => {
          errors += 1;
          if (errors <= 3) process.stderr.write(`naive GetAccessToken failed: ${err instanceof Error ? err.message : String(err)}\n`);
          callback({ code: status.INTERNAL, details: 'naive server failed' }, null);
        },
      );
    },
  };
  server.addService(TokenBrokerServiceService, implementation);
  server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, bound) => {
    if (err) throw err;
    process.stdout.write(`${JSON.stringify({ event: 'listening', port: bound })}\n`);
  });
  process.on('SIGUSR2', () => process.stdout.write(`${JSON.stringify({ event: 'stats', ok, errors })}\n`));
  process.once('SIGTERM', () => {
    server.forceShutdown();
    void db.terminate().finally(() => process.exit(0));
  });
}

main();
