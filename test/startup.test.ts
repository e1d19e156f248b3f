import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startApp } from '../src/app';
import { ConfigError, loadConfig } from '../src/config/config';
import { LocalSecretManagerServer } from '../src/local/secret-manager-server';
import { firestoreEmulator } from './support/global-fixtures';
import { captureLogs } from './support/log-capture';

const PROJECT = 'tokenbroker-test';
const CLIENT = `projects/${PROJECT}/secrets/oauth-client`;
const KEYSET = `projects/${PROJECT}/secrets/keyset`;
const clientSecret = `GOCSPX-${randomBytes(12).toString('base64url')}`;
const key = randomBytes(32).toString('base64');
const clientJson = JSON.stringify({ web: { client_id: 'x.apps.googleusercontent.com', client_secret: clientSecret } });
const keysetJson = JSON.stringify({ primary: 'k1', keys: [{ id: 'k1', key }] });

function env(extra: Record<string, string>): Record<string, string> {
  return {
    TOKENBROKER_LISTEN_HOST: '127.0.0.1',
    PORT: '0',
    GOOGLE_CLOUD_PROJECT: PROJECT,
    FIRESTORE_EMULATOR_HOST: firestoreEmulator().host,
    TOKENBROKER_OAUTH_CLIENT_SECRET: `${CLIENT}/versions/latest`,
    TOKENBROKER_ENCRYPTION_KEYSET: `${KEYSET}/versions/latest`,
    TOKENBROKER_GOOGLE_TOKEN_URL: 'http://127.0.0.1:9/token',
    TOKENBROKER_GOOGLE_REVOKE_URL: 'http://127.0.0.1:9/revoke',
    TOKENBROKER_GOOGLE_CERTS_URL: 'http://127.0.0.1:9/certs',
    TOKENBROKER_CALLER_AUTH: 'insecure-none',
    ...extra,
  };
}

/** Starts the service with `secrets` in a local Secret Manager; resolves with the start-up error message, or undefined. */
async function startupError(secrets: Record<string, string>, extra: Record<string, string> = {}, fault?: number): Promise<string | undefined> {
  const sm = await LocalSecretManagerServer.start({ secrets });
  if (fault !== undefined) sm.injectFault({ code: fault, times: 1_000 });
  try {
    const app = await startApp(loadConfig(env({ TOKENBROKER_SECRET_MANAGER_ENDPOINT: `${sm.host}:${sm.port}`, ...extra })), {
      logDestination: captureLogs(),
    });
    await app.stop();
    return undefined;
  } catch (err: unknown) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    await sm.close();
  }
}

describe('start-up', () => {
  it('starts with both secrets from Secret Manager', async () => {
    expect(await startupError({ [CLIENT]: clientJson, [KEYSET]: keysetJson })).to.equal(undefined);
  });

  it('fails naming the secret when it does not exist', async () => {
    const message = await startupError({ [KEYSET]: keysetJson });
    expect(message).to.include(`${CLIENT}/versions/latest`).and.include('NOT_FOUND');
  });

  it('fails within its timeout instead of hanging when Secret Manager is unavailable', async () => {
    const message = await startupError({ [CLIENT]: clientJson, [KEYSET]: keysetJson }, { TOKENBROKER_SECRET_TIMEOUT_MS: '500' }, status.UNAVAILABLE);
    expect(message).to.match(/cannot read secret .* from Secret Manager/);
  });

  it('fails naming the setting when the OAuth client JSON is malformed, without quoting it', async () => {
    const broken = JSON.stringify({ other: { client_secret: clientSecret } });
    const message = await startupError({ [CLIENT]: broken, [KEYSET]: keysetJson });
    expect(message).to.include('TOKENBROKER_OAUTH_CLIENT_SECRET').and.include('"web" or "installed"');
    expect(message).to.not.include(clientSecret);
  });

  it('fails naming the setting when the keyset is malformed, without quoting it', async () => {
    const message = await startupError({ [CLIENT]: clientJson, [KEYSET]: JSON.stringify({ primary: 'k9', keys: [{ id: 'k1', key }] }) });
    expect(message).to.include('TOKENBROKER_ENCRYPTION_KEYSET');
    expect(message).to.not.include(key);
  });

  describe('with file: secrets (local development)', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(path.join(tmpdir(), 'tokenbroker-secrets-'));
      writeFileSync(path.join(dir, 'client.json'), clientJson, { mode: 0o600 });
      writeFileSync(path.join(dir, 'keyset.json'), keysetJson, { mode: 0o600 });
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('starts without any Secret Manager', async () => {
      const app = await startApp(
        loadConfig(env({ TOKENBROKER_OAUTH_CLIENT_SECRET: `file:${dir}/client.json`, TOKENBROKER_ENCRYPTION_KEYSET: `file:${dir}/keyset.json` })),
        { logDestination: captureLogs() },
      );
      expect(app.port).to.be.greaterThan(0);
      await app.stop();
    });

    it('fails naming a missing file', async () => {
      const message = await startApp(loadConfig(env({ TOKENBROKER_OAUTH_CLIENT_SECRET: `file:${dir}/missing.json`, TOKENBROKER_ENCRYPTION_KEYSET: `file:${dir}/keyset.json` }))).then(
        () => undefined,
        (err: unknown) => (err as Error).message,
      );
      expect(message).to.include(`${dir}/missing.json`).and.include('ENOENT');
    });

    const fileSecrets = () => ({ TOKENBROKER_OAUTH_CLIENT_SECRET: `file:${dir}/client.json`, TOKENBROKER_ENCRYPTION_KEYSET: `file:${dir}/keyset.json` });
    const withPolicy = (file: string) =>
      env({ ...fileSecrets(), TOKENBROKER_CALLER_AUTH: 'google-id-token', TOKENBROKER_CALLER_AUDIENCE: 'https://tokenbroker.test', TOKENBROKER_POLICY_FILE: file });

    it('refuses to start with a missing or malformed caller policy, naming the setting', async () => {
      writeFileSync(path.join(dir, 'policy.yaml'), 'callers:\n  a@p.iam.gserviceaccount.com:\n    rpcs: [GetAccessToken]\n');
      for (const [file, expected] of [
        [`${dir}/no-policy.yaml`, 'ENOENT'],
        [`${dir}/policy.yaml`, 'scopes must list the scopes'],
      ] as const) {
        const err = await startApp(loadConfig(withPolicy(file)), { logDestination: captureLogs() }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).to.be.instanceOf(ConfigError);
        expect((err as Error).message).to.match(/^TOKENBROKER_POLICY_FILE: /).and.include(file).and.include(expected);
      }
    });

    it('warns loudly when it serves without caller authentication', async () => {
      const lines: string[] = [];
      const app = await startApp(loadConfig(env(fileSecrets())), { logDestination: captureLogs(lines) });
      await app.stop();
      const warning = lines.find((line) => line.includes('"event":"insecure_caller_auth"'));
      expect(warning).to.include('"severity":"WARNING"').and.include('ANY CALLER');
    });
  });

  it('exits 2 from main with a message naming the bad setting', () => {
    const result = spawnSync(process.execPath, ['--require', 'tsx/cjs', 'src/main.ts'], {
      env: { PATH: process.env.PATH, METADATA_SERVER_DETECTION: 'none', ...env({}), GOOGLE_CLOUD_PROJECT: '' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(result.status).to.equal(2);
    expect(result.stderr).to.include('GOOGLE_CLOUD_PROJECT is required');
  });
});
