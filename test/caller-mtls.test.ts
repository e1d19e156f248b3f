import { credentials, status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { isServiceError } from '../src/client/error-info';
import { checkHealth } from '../src/client/health-client';
import { TokenBrokerClient } from '../src/client/token-broker-client';
import { expectGrpcError, TestStack } from './support/stack';
import { TestPki, type IssuedCert } from './support/test-pki';

const PHOTOS = 'spiffe://cluster.local/ns/photos/sa/photos';
const GATEWAY = 'gateway.gateway.svc.cluster.local';
const DRIVE = 'https://www.googleapis.com/auth/drive.readonly';

const POLICY = `
callers:
  ${PHOTOS}:
    rpcs: [GetAccessToken]
    scopes: [${DRIVE}]
  ${GATEWAY}:
    rpcs: [ExchangeCode, GetProfile]
`;

describe('caller authentication by mutual TLS', function () {
  this.timeout(30_000);
  let pki: TestPki;
  let otherPki: TestPki;
  let stack: TestStack;
  const certs: Record<'photos' | 'gateway' | 'cnOnly' | 'otherCa', IssuedCert> = {} as never;
  const clients: TokenBrokerClient[] = [];

  before(async () => {
    [pki, otherPki] = await Promise.all([TestPki.create('platform'), TestPki.create('other')]);
    const server = await pki.issue('tokenbroker', 'DNS:localhost', 'serverAuth');
    certs.photos = await pki.issue('photos', `URI:${PHOTOS}`, 'clientAuth');
    certs.gateway = await pki.issue('gateway', `DNS:${GATEWAY}`, 'clientAuth');
    certs.cnOnly = await pki.issue(GATEWAY, undefined, 'clientAuth');
    certs.otherCa = await otherPki.issue('photos', `URI:${PHOTOS}`, 'clientAuth');
    stack = await TestStack.start({ policy: POLICY, mtls: { server, clientCaFile: pki.caFile } });
  });
  after(async () => {
    for (const client of clients) client.close();
    await stack?.close();
    pki?.remove();
    otherPki?.remove();
  });

  const address = () => `127.0.0.1:${stack.app.port}`;
  /** A client presenting `cert` (none when undefined) and trusting the platform CA. */
  function clientWith(cert: IssuedCert | undefined): TokenBrokerClient {
    const creds = cert ? credentials.createSsl(pki.ca, cert.key, cert.cert) : credentials.createSsl(pki.ca);
    // The server certificate names localhost; the stack listens on 127.0.0.1.
    const client = new TokenBrokerClient(address(), { credentials: creds, channelOptions: { 'grpc.ssl_target_name_override': 'localhost' } });
    clients.push(client);
    return client;
  }

  async function expectRefusedHandshake(client: TokenBrokerClient) {
    stack.google.resetStats();
    const err = await client.getProfile({ userId: '123' }, { timeoutMs: 3000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isServiceError(err) && err.code, String(err)).to.be.oneOf([status.UNAVAILABLE, status.DEADLINE_EXCEEDED]);
    expect(stack.google.stats().token).to.equal(0);
  }

  it('serves callers identified by their certificate\'s URI or DNS SAN, as the policy allows', async () => {
    const user = stack.newUser();
    const gateway = clientWith(certs.gateway);
    const exchanged = await gateway.exchangeCode({ authCode: stack.mintCode(user) });
    expect(exchanged.userId).to.equal(user.sub);
    expect((await gateway.getProfile({ userId: user.sub })).profile?.email).to.equal(user.email);
    const token = await clientWith(certs.photos).getAccessToken({ userId: user.sub });
    expect(token.scopes).to.deep.equal([DRIVE]);
    const audit = stack.logs.find((line) => line.includes('"event":"token_issued"') && line.includes(user.sub));
    expect(audit).to.include(`"caller":"${PHOTOS}"`);
  });

  it('refuses an allowed identity an RPC its policy does not list', async () => {
    await expectGrpcError(clientWith(certs.photos).getProfile({ userId: '123' }), status.PERMISSION_DENIED, 'PERMISSION_DENIED');
    await expectGrpcError(clientWith(certs.gateway).getAccessToken({ userId: '123', scopes: [DRIVE] }), status.PERMISSION_DENIED, 'PERMISSION_DENIED');
  });

  it('refuses a certificate without a URI or DNS SAN, whatever its CN says', async () => {
    await expectGrpcError(clientWith(certs.cnOnly).getProfile({ userId: '123' }), status.UNAUTHENTICATED, 'UNAUTHENTICATED');
  });

  it('refuses the TLS handshake for a certificate from another CA, no certificate, or plaintext', async () => {
    await expectRefusedHandshake(clientWith(certs.otherCa));
    await expectRefusedHandshake(clientWith(undefined));
    const plaintext = new TokenBrokerClient(address());
    clients.push(plaintext);
    await expectRefusedHandshake(plaintext);
  });

  it('answers plaintext health checks on the health port, for probes', async () => {
    expect(stack.app.healthPort).to.be.a('number');
    expect(await checkHealth(`127.0.0.1:${String(stack.app.healthPort)}`)).to.equal('SERVING');
    expect(await checkHealth(`127.0.0.1:${String(stack.app.healthPort)}`, 'tokenbroker.v1.TokenBrokerService')).to.equal('SERVING');
  });
});
