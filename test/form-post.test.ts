import { expect } from 'chai';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { FormPoster, HttpAnswerError, HttpTransportError } from '../src/adapters/google/form-post';

const FORM = new URLSearchParams({ grant_type: 'authorization_code', code: '4/0-a-one-time-code', client_secret: 'GOCSPX-form-post-secret' }).toString();

/** An HTTP server on loopback answering with `handle`, and the sockets it accepted. */
async function serve(handle: (req: IncomingMessage, body: string, res: ServerResponse) => void): Promise<{ url: string; sockets: Set<Socket>; server: Server }> {
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => handle(req, body, res));
  });
  server.on('connection', (socket) => sockets.add(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`, sockets, server };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err: unknown) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** Everything an error would show in a log line or a cause chain. */
function shown(err: unknown): string {
  const e = err as Error;
  return `${e.name} ${e.message} ${e.stack ?? ''} ${JSON.stringify(e)}`;
}

describe('FormPoster: form POSTs to Google over node:http', () => {
  const servers: Server[] = [];
  const started = async (handle: Parameters<typeof serve>[0]) => {
    const s = await serve(handle);
    servers.push(s.server);
    return s;
  };
  afterEach(async () => {
    for (const s of servers.splice(0)) {
      s.closeAllConnections();
      await new Promise((resolve) => s.close(resolve));
    }
  });

  it('sends the form as application/x-www-form-urlencoded and reads the 2xx body; connections are reused', async () => {
    const seen: Array<{ type?: string; length?: string; body: string }> = [];
    const { url, sockets } = await started((req, body, res) => {
      seen.push({ type: req.headers['content-type'], length: req.headers['content-length'], body });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"access_token":"ya29.x"}');
    });
    const poster = new FormPoster();
    expect(await poster.post(url, FORM, 5000)).to.equal('{"access_token":"ya29.x"}');
    expect(await poster.post(url, FORM, 5000)).to.equal('{"access_token":"ya29.x"}');
    expect(seen).to.deep.equal([
      { type: 'application/x-www-form-urlencoded', length: String(Buffer.byteLength(FORM)), body: FORM },
      { type: 'application/x-www-form-urlencoded', length: String(Buffer.byteLength(FORM)), body: FORM },
    ]);
    expect(sockets.size, 'connections opened for two requests').to.equal(1);
  });

  it('rejects a non-2xx answer with its status, Retry-After and body, and nothing of the request', async () => {
    const { url } = await started((_req, _body, res) => res.writeHead(429, { 'retry-after': '7' }).end('{"error":"rate_limited"}'));
    const err = await rejection(new FormPoster().post(url, FORM, 5000));
    expect(err).to.be.instanceOf(HttpAnswerError);
    const answer = err as HttpAnswerError;
    expect([answer.status, answer.retryAfter, answer.body]).to.deep.equal([429, '7', '{"error":"rate_limited"}']);
    expect(shown(err)).not.to.match(/one-time-code|form-post-secret/);
  });

  it('names a reset after the request was read ECONNRESET, with nothing of the request', async () => {
    const { url } = await started((req) => req.socket.destroy());
    const err = await rejection(new FormPoster().post(url, FORM, 5000));
    expect(err).to.be.instanceOf(HttpTransportError);
    expect((err as HttpTransportError).code).to.equal('ECONNRESET');
    expect(shown(err)).not.to.match(/one-time-code|form-post-secret/);
  });

  it('names an answer cut off mid-body ECONNRESET, not a short success', async () => {
    const { url } = await started((_req, _body, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.write('{"access_token":');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const err = await rejection(new FormPoster().post(url, FORM, 5000));
    expect((err as HttpTransportError).code).to.equal('ECONNRESET');
  });

  it('names a refused connection ECONNREFUSED (never sent)', async () => {
    const closed = createTcpServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const err = await rejection(new FormPoster().post(`http://127.0.0.1:${port}/token`, FORM, 5000));
    expect((err as HttpTransportError).code).to.equal('ECONNREFUSED');
  });

  it('cuts an attempt at its timeout, answer or not, as TIMEOUT', async () => {
    const { url } = await started(() => undefined);
    const t0 = performance.now();
    const err = await rejection(new FormPoster().post(url, FORM, 150));
    const ms = performance.now() - t0;
    expect((err as HttpTransportError).code).to.equal('TIMEOUT');
    expect(ms).to.be.within(140, 2000);
  });

  it('stops reading an answer over 1 MiB: BODY_TOO_LARGE', async () => {
    const { url } = await started((_req, _body, res) => {
      res.writeHead(200);
      res.end(Buffer.alloc(2 * 1024 * 1024, 0x61));
    });
    const err = await rejection(new FormPoster().post(url, FORM, 5000));
    expect((err as HttpTransportError).code).to.equal('BODY_TOO_LARGE');
  });

  it('refuses a URL that is neither http: nor https: without sending', async () => {
    const err = await rejection(new FormPoster().post('ftp://127.0.0.1/token', FORM, 5000));
    expect((err as HttpTransportError).code).to.equal('UNSUPPORTED_PROTOCOL');
  });
});
