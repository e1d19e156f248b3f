// Before any Google client exists: no credential lookup may probe the GCE metadata server.
process.env.METADATA_SERVER_DETECTION = 'none';

import { expect } from 'chai';
import { status } from '@grpc/grpc-js';
import { SecretManagerServiceClient } from '@google-cloud/secret-manager';
import {
  crc32c,
  LocalSecretManagerServer,
  localSecretManagerClientOptions,
} from '../src/local/secret-manager-server';

const SECRET = 'projects/tokenbroker-test/secrets/oauth-client';

// retry: null turns off gax retries (AccessSecretVersion retries UNAVAILABLE for up to 600 s by
// default), so a faulted call fails at once.
const NO_RETRY = { retry: null, timeout: 5000 };

/** The gRPC error a call fails with; fails the test if the call succeeds. */
async function callError(call: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await call;
  } catch (error: unknown) {
    const { code, details } = error as { code: number; details: string };
    return { code, details };
  }
  throw new Error('expected the call to fail');
}

describe('LocalSecretManagerServer', () => {
  let server: LocalSecretManagerServer;
  let client: SecretManagerServiceClient;

  beforeEach(async () => {
    server = await LocalSecretManagerServer.start({ secrets: { [SECRET]: 'first' } });
    client = new SecretManagerServiceClient(localSecretManagerClientOptions(server));
  });

  afterEach(async () => {
    await client.close();
    await server.close();
  });

  async function access(name: string): Promise<{ name: string; data: string; crc: number }> {
    const [response] = await client.accessSecretVersion({ name }, NO_RETRY);
    return {
      name: response.name ?? '',
      data: Buffer.from(response.payload?.data ?? '').toString('utf8'),
      crc: Number(response.payload?.dataCrc32c),
    };
  }

  it('listens on loopback at an OS-chosen port', () => {
    expect(server.host).to.equal('127.0.0.1');
    expect(server.port).to.be.greaterThan(0);
  });

  it('serves latest and numbered versions with their resolved name and CRC32C', async () => {
    expect(await access(`${SECRET}/versions/latest`)).to.deep.equal({
      name: `${SECRET}/versions/1`,
      data: 'first',
      crc: crc32c(Buffer.from('first')),
    });
    expect((await access(`${SECRET}/versions/1`)).data).to.equal('first');
  });

  it('moves latest to a version added later and keeps the older ones', async () => {
    const added = server.addVersion(SECRET, Buffer.from('second'));
    expect(added).to.equal(`${SECRET}/versions/2`);
    expect(await access(`${SECRET}/versions/latest`)).to.include({ name: added, data: 'second' });
    expect((await access(`${SECRET}/versions/1`)).data).to.equal('first');
  });

  it('returns payload.data as a Buffer, binary-safe', async () => {
    const bytes = Buffer.from([0, 255, 128, 10]);
    server.addVersion('projects/p/secrets/binary', bytes);
    const [response] = await client.accessSecretVersion({ name: 'projects/p/secrets/binary/versions/1' }, NO_RETRY);
    expect(Buffer.isBuffer(response.payload?.data)).to.equal(true);
    expect(Buffer.compare(response.payload?.data as Buffer, bytes)).to.equal(0);
  });

  it('answers NOT_FOUND for an unknown secret or version, naming the resource', async () => {
    const missingSecret = await callError(client.accessSecretVersion({ name: 'projects/p/secrets/missing/versions/latest' }, NO_RETRY));
    expect(missingSecret).to.deep.equal({
      code: status.NOT_FOUND,
      details: 'Secret [projects/p/secrets/missing] not found or has no versions.',
    });
    const missingVersion = await callError(client.accessSecretVersion({ name: `${SECRET}/versions/7` }, NO_RETRY));
    expect(missingVersion).to.deep.equal({ code: status.NOT_FOUND, details: `Secret Version [${SECRET}/versions/7] not found.` });
  });

  it('answers INVALID_ARGUMENT for a malformed name', async () => {
    for (const name of ['', SECRET, `${SECRET}/versions/`, `${SECRET}/versions/0`, `${SECRET}/versions/one`, `x/${SECRET}/versions/1`]) {
      expect((await callError(client.accessSecretVersion({ name }, NO_RETRY))).code, name).to.equal(status.INVALID_ARGUMENT);
    }
  });

  it('answers FAILED_PRECONDITION for a disabled version, also through latest', async () => {
    const second = server.addVersion(SECRET, 'second');
    server.disableVersion(second);
    for (const name of [second, `${SECRET}/versions/latest`]) {
      expect(await callError(client.accessSecretVersion({ name }, NO_RETRY))).to.deep.equal({
        code: status.FAILED_PRECONDITION,
        details: `Secret Version [${second}] is in DISABLED state.`,
      });
    }
    expect((await access(`${SECRET}/versions/1`)).data).to.equal('first');
  });

  it('fails an injected status code for the given number of calls, then recovers', async () => {
    server.injectFault({ code: status.UNAVAILABLE, times: 2 });
    const started = Date.now();
    expect((await callError(access(`${SECRET}/versions/latest`))).code).to.equal(status.UNAVAILABLE);
    expect((await callError(access(`${SECRET}/versions/latest`))).code).to.equal(status.UNAVAILABLE);
    expect(Date.now() - started, 'no client retries').to.be.lessThan(1000);
    expect((await access(`${SECRET}/versions/latest`)).data).to.equal('first');
  });

  it('keeps a fault without times until clearFaults', async () => {
    server.injectFault({ code: status.PERMISSION_DENIED });
    for (let i = 0; i < 3; i += 1) {
      expect((await callError(access(`${SECRET}/versions/1`))).code).to.equal(status.PERMISSION_DENIED);
    }
    server.clearFaults();
    expect((await access(`${SECRET}/versions/1`)).data).to.equal('first');
  });

  it('delays answers, so a short client deadline fails with DEADLINE_EXCEEDED', async () => {
    server.injectFault({ delayMs: 400, times: 1 });
    const late = await callError(client.accessSecretVersion({ name: `${SECRET}/versions/1` }, { retry: null, timeout: 100 }));
    expect(late.code).to.equal(status.DEADLINE_EXCEEDED);

    server.injectFault({ delayMs: 150, times: 1 });
    const started = Date.now();
    expect((await access(`${SECRET}/versions/1`)).data).to.equal('first');
    expect(Date.now() - started).to.be.at.least(140);
  });

  it('counts every AccessSecretVersion call, failed ones included', async () => {
    expect(server.accessCount).to.equal(0);
    await access(`${SECRET}/versions/1`);
    await callError(access('projects/p/secrets/missing/versions/1'));
    server.injectFault({ code: status.UNAVAILABLE, times: 1 });
    await callError(access(`${SECRET}/versions/1`));
    expect(server.accessCount).to.equal(3);
  });

  it('answers UNIMPLEMENTED for the other Secret Manager methods', async () => {
    const error = await callError(client.getSecret({ name: SECRET }, NO_RETRY));
    expect(error.code).to.equal(status.UNIMPLEMENTED);
    expect(server.accessCount).to.equal(0);
  });

  it('rejects bad arguments to its own control methods', () => {
    expect(() => server.addVersion('secrets/x', 'v')).to.throw(/projects\/P\/secrets\/S/);
    expect(() => server.disableVersion(`${SECRET}/versions/9`)).to.throw(/no such version/);
    expect(() => server.disableVersion(`${SECRET}/versions/latest`)).to.throw(/no such version/);
    expect(() => server.injectFault({ code: status.UNAVAILABLE, times: 0 })).to.throw(/times/);
  });

  it('refuses a malformed secret name at start', async () => {
    let error: unknown;
    await LocalSecretManagerServer.start({ secrets: { 'oauth-client': 'x' } }).catch((caught: unknown) => (error = caught));
    expect(String(error)).to.contain('projects/P/secrets/S');
  });

  it('can be closed twice', async () => {
    await server.close();
    await server.close();
  });
});

describe('crc32c', () => {
  it('matches the CRC-32C check value', () => {
    expect(crc32c(Buffer.from('123456789'))).to.equal(0xe3069283);
    expect(crc32c(Buffer.alloc(0))).to.equal(0);
  });
});
