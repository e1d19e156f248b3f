/**
 * A counting, timing HTTP pass-through in front of the local OAuth server
 * (the brokers' stand-in for Google). Every upstream call a broker makes is
 * seen here, independently of the OAuth server's own stats(), with the time
 * from the request's arrival to the end of the upstream answer: the
 * "waiting on Google" part of an ExchangeCode.
 */
import { Agent, createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request seen by the proxy, on the bench's performance.now() clock. */
export interface HttpCall {
  path: string;
  startMs: number;
  endMs: number;
  status: number;
}

export class HttpTimingProxy {
  readonly calls: HttpCall[] = [];
  private total = 0;

  private constructor(
    private readonly server: Server,
    private readonly agent: Agent,
    /** Base URL brokers use instead of the upstream's. */
    readonly url: string,
  ) {}

  /** Starts a proxy on 127.0.0.1 (OS-picked port) forwarding to `upstreamUrl` (http://127.0.0.1:PORT). */
  static async start(upstreamUrl: string): Promise<HttpTimingProxy> {
    const upstream = new URL(upstreamUrl);
    const agent = new Agent({ keepAlive: true, maxSockets: 64 });
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const proxy = new HttpTimingProxy(server, agent, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => proxy.forward(upstream, req, res));
    return proxy;
  }

  /** Requests forwarded since start. */
  get count(): number {
    return this.total;
  }

  /** The same URL as `upstreamUrl` would have, on this proxy. */
  rewrite(upstreamUrl: string): string {
    const u = new URL(upstreamUrl);
    return `${this.url}${u.pathname}${u.search}`;
  }

  close(): Promise<void> {
    this.agent.destroy();
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private forward(upstream: URL, req: IncomingMessage, res: ServerResponse): void {
    const startMs = performance.now();
    this.total += 1;
    const path = req.url ?? '/';
    const headers = { ...req.headers, host: upstream.host };
    const out = request({ host: upstream.hostname, port: upstream.port, method: req.method, path, headers, agent: this.agent }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
      upRes.on('end', () => {
        if (this.calls.length < 200_000) this.calls.push({ path: path.split('?')[0] ?? path, startMs, endMs: performance.now(), status: upRes.statusCode ?? 0 });
      });
    });
    out.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(out);
  }
}
