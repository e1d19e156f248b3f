import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LocalOAuthServer } from '../../src/local/oauth-server';
import { firestoreEmulator } from './global-fixtures';
import { issuedSecrets } from './log-capture';
import { APP_CLIENT_ID, SERVER_CLIENT_ID } from './stack';

/**
 * For tests that run the broker as a child process (`node dist/main.js`):
 * starts a local Google, writes its OAuth client and a one-key keyset into
 * `secretsDir` (mode 0600; both registered for the leak scan), and returns
 * the environment that runs the broker against them and the suite's
 * Firestore emulator, on 127.0.0.1 with an OS-picked port, callers not
 * authenticated. The caller closes `google`.
 */
export async function brokerProcessEnv(secretsDir: string, collectionPrefix: string): Promise<{ google: LocalOAuthServer; env: Record<string, string> }> {
  const clientSecret = `GOCSPX-${randomBytes(18).toString('base64url')}`;
  const key = randomBytes(32).toString('base64');
  issuedSecrets.add(clientSecret);
  issuedSecrets.add(key);
  const google = await LocalOAuthServer.start({ clientId: SERVER_CLIENT_ID, clientSecret, appClientIds: [APP_CLIENT_ID] });
  mkdirSync(secretsDir, { recursive: true });
  writeFileSync(path.join(secretsDir, 'client.json'), JSON.stringify({ web: { client_id: SERVER_CLIENT_ID, client_secret: clientSecret } }), { mode: 0o600 });
  writeFileSync(path.join(secretsDir, 'keyset.json'), JSON.stringify({ primary: 'k1', keys: [{ id: 'k1', key }] }), { mode: 0o600 });
  const env = {
    TOKENBROKER_LISTEN_HOST: '127.0.0.1',
    PORT: '0',
    METADATA_SERVER_DETECTION: 'none',
    GOOGLE_CLOUD_PROJECT: firestoreEmulator().projectId,
    FIRESTORE_EMULATOR_HOST: firestoreEmulator().host,
    TOKENBROKER_FIRESTORE_COLLECTION: `${collectionPrefix}_${randomBytes(4).toString('hex')}`,
    TOKENBROKER_OAUTH_CLIENT_SECRET: `file:${secretsDir}/client.json`,
    TOKENBROKER_ENCRYPTION_KEYSET: `file:${secretsDir}/keyset.json`,
    TOKENBROKER_GOOGLE_TOKEN_URL: google.endpoints.tokenUrl,
    TOKENBROKER_GOOGLE_REVOKE_URL: google.endpoints.revokeUrl,
    TOKENBROKER_GOOGLE_CERTS_URL: google.endpoints.pemCertsUrl,
    TOKENBROKER_ID_TOKEN_ISSUERS: google.issuer,
    TOKENBROKER_ALLOWED_APP_CLIENT_IDS: APP_CLIENT_ID,
    TOKENBROKER_CALLER_AUTH: 'insecure-none',
  };
  return { google, env };
}
