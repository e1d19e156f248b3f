import { createServer, type Server } from 'node:http';
import { closeHttp, listenHttp } from '../transport/http-server';
import type { Logger } from './logger';
import type { PrometheusMetrics } from './prometheus-metrics';

/**
 * The Prometheus scrape endpoint: plain HTTP on a port of its own, `GET
 * /metrics` in the text exposition format; anything else is 404 (405 for
 * another method on /metrics). It serves only counts and latencies: no
 * label carries a user, a caller or a token.
 */
export class MetricsServer {
  private constructor(
    private readonly server: Server,
    /** The bound port. */
    readonly port: number,
  ) {}

  /** Listens on `host:port` (0: any free port) and resolves once bound. */
  static async start(metrics: PrometheusMetrics, host: string, port: number, logger: Logger): Promise<MetricsServer> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      if (path !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end('method not allowed\n');
        return;
      }
      metrics.scrape().then(
        ({ contentType, body }) => {
          res.writeHead(200, { 'content-type': contentType });
          res.end(req.method === 'HEAD' ? undefined : body);
        },
        (err: unknown) => {
          logger.error({ event: 'metrics_scrape_failed', error: err instanceof Error ? err.name : 'unknown' }, 'collecting metrics failed');
          res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
        },
      );
    });
    // A scraper keeps its connection open between scrapes; closing must not wait for it.
    server.keepAliveTimeout = 65_000;
    return new MetricsServer(server, await listenHttp(server, host, port));
  }

  /** Stops listening and drops open scrape connections. */
  close(): Promise<void> {
    return closeHttp(this.server);
  }
}
