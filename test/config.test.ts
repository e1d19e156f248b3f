import { expect } from 'chai';
import { ConfigError, loadConfig } from '../src/config/config';

const minimal = {
  GOOGLE_CLOUD_PROJECT: 'my-project-1',
  TOKENBROKER_OAUTH_CLIENT_SECRET: 'projects/my-project-1/secrets/oauth-client/versions/latest',
  TOKENBROKER_ENCRYPTION_KEYSET: 'projects/my-project-1/secrets/token-keyset/versions/3',
  TOKENBROKER_CALLER_AUTH: 'insecure-none',
};

describe('loadConfig', () => {
  it('applies the documented defaults, pointing at Google', () => {
    const config = loadConfig(minimal);
    expect(config.port).to.equal(8080);
    expect(config.host).to.equal('0.0.0.0');
    expect(config.firestore).to.deep.equal({ databaseId: '(default)', collection: 'tokenbroker_grants', emulatorHost: undefined, timeoutMs: 5000 });
    expect(config.google.tokenUrl).to.equal('https://oauth2.googleapis.com/token');
    expect(config.google.certsUrl).to.equal('https://www.googleapis.com/oauth2/v1/certs');
    expect(config.google.issuers).to.deep.equal(['accounts.google.com', 'https://accounts.google.com']);
    expect(config.tokens.defaultMinTtlMs).to.equal(300_000);
    expect(config.allowedAppClientIds).to.deep.equal([]);
    expect(config.logLevel).to.equal('info');
  });

  it('reads Google ID-token caller authentication with its audience and policy file', () => {
    const config = loadConfig({
      ...minimal,
      TOKENBROKER_CALLER_AUTH: 'google-id-token',
      TOKENBROKER_CALLER_AUDIENCE: 'https://tokenbroker.internal',
      TOKENBROKER_POLICY_FILE: '/etc/tokenbroker/policy.yaml',
    });
    expect(config.callers).to.deep.equal({ mode: 'google-id-token', audience: 'https://tokenbroker.internal', policyFile: '/etc/tokenbroker/policy.yaml' });
  });

  it('reads mutual-TLS caller authentication with its certificate, key and client CA', () => {
    const config = loadConfig({
      ...minimal,
      TOKENBROKER_CALLER_AUTH: 'mtls',
      TOKENBROKER_POLICY_FILE: '/etc/tokenbroker/policy.yaml',
      TOKENBROKER_TLS_CERT: 'file:/etc/tls/tls.crt',
      TOKENBROKER_TLS_KEY: 'projects/my-project-1/secrets/tls-key/versions/2',
      TOKENBROKER_TLS_CLIENT_CA: 'file:/etc/tls/ca.crt',
      TOKENBROKER_HEALTH_PORT: '8081',
    });
    expect(config.callers).to.deep.equal({
      mode: 'mtls',
      policyFile: '/etc/tokenbroker/policy.yaml',
      tls: { certRef: 'file:/etc/tls/tls.crt', keyRef: 'projects/my-project-1/secrets/tls-key/versions/2', clientCaRef: 'file:/etc/tls/ca.crt' },
    });
    expect(config.healthPort).to.equal(8081);
    expect(loadConfig(minimal).healthPort).to.equal(undefined);
  });

  it('reads overrides', () => {
    const config = loadConfig({
      ...minimal,
      PORT: '9090',
      TOKENBROKER_ALLOWED_APP_CLIENT_IDS: ' a.apps , b.apps ,',
      TOKENBROKER_GOOGLE_TOKEN_URL: 'http://127.0.0.1:1234/token',
      TOKENBROKER_OAUTH_CLIENT_SECRET: 'file:/etc/tokenbroker/client.json',
      FIRESTORE_EMULATOR_HOST: '127.0.0.1:8085',
    });
    expect(config.port).to.equal(9090);
    expect(config.allowedAppClientIds).to.deep.equal(['a.apps', 'b.apps']);
    expect(config.google.tokenUrl).to.equal('http://127.0.0.1:1234/token');
    expect(config.secrets.oauthClientRef).to.equal('file:/etc/tokenbroker/client.json');
    expect(config.firestore.emulatorHost).to.equal('127.0.0.1:8085');
  });

  const bad: Array<[string, Record<string, string>]> = [
    ['GOOGLE_CLOUD_PROJECT', { GOOGLE_CLOUD_PROJECT: '' }],
    ['GOOGLE_CLOUD_PROJECT', { GOOGLE_CLOUD_PROJECT: 'Bad_Project' }],
    ['TOKENBROKER_OAUTH_CLIENT_SECRET', { TOKENBROKER_OAUTH_CLIENT_SECRET: 'oauth-client' }],
    ['TOKENBROKER_ENCRYPTION_KEYSET', { TOKENBROKER_ENCRYPTION_KEYSET: '' }],
    ['PORT', { PORT: 'eighty' }],
    ['PORT', { PORT: '70000' }],
    ['TOKENBROKER_GOOGLE_TOKEN_URL', { TOKENBROKER_GOOGLE_TOKEN_URL: 'ftp://example.com/token' }],
    ['TOKENBROKER_LOG_LEVEL', { TOKENBROKER_LOG_LEVEL: 'loud' }],
    ['FIRESTORE_EMULATOR_HOST', { FIRESTORE_EMULATOR_HOST: 'http://localhost:8080' }],
    ['TOKENBROKER_FIRESTORE_COLLECTION', { TOKENBROKER_FIRESTORE_COLLECTION: 'a/b' }],
    ['TOKENBROKER_DEFAULT_MIN_TTL_SECONDS', { TOKENBROKER_DEFAULT_MIN_TTL_SECONDS: '600', TOKENBROKER_MAX_MIN_TTL_SECONDS: '300' }],
    ['TOKENBROKER_CALLER_AUTH', { TOKENBROKER_CALLER_AUTH: '' }],
    ['TOKENBROKER_CALLER_AUTH', { TOKENBROKER_CALLER_AUTH: 'none' }],
    ['TOKENBROKER_CALLER_AUDIENCE', { TOKENBROKER_CALLER_AUTH: 'google-id-token', TOKENBROKER_POLICY_FILE: '/etc/tokenbroker/policy.yaml' }],
    ['TOKENBROKER_POLICY_FILE', { TOKENBROKER_CALLER_AUTH: 'google-id-token', TOKENBROKER_CALLER_AUDIENCE: 'https://tokenbroker.internal' }],
    ['TOKENBROKER_REFRESH_LEASE_MS', { TOKENBROKER_REFRESH_LEASE_MS: '15000' }],
    ['TOKENBROKER_TLS_CERT', { TOKENBROKER_CALLER_AUTH: 'mtls', TOKENBROKER_POLICY_FILE: '/p.yaml', TOKENBROKER_TLS_KEY: 'file:/k', TOKENBROKER_TLS_CLIENT_CA: 'file:/ca' }],
    ['TOKENBROKER_HEALTH_PORT', { TOKENBROKER_HEALTH_PORT: 'ninety' }],
    ['TOKENBROKER_POLICY_FILE', { TOKENBROKER_CALLER_AUTH: 'mesh-xfcc' }],
  ];
  for (const [setting, env] of bad) {
    it(`stops with a ConfigError naming ${setting} for ${JSON.stringify(env)}`, () => {
      expect(() => loadConfig({ ...minimal, ...env }))
        .to.throw(ConfigError)
        .with.property('message')
        .that.matches(new RegExp(`^${setting} `));
    });
  }
});
