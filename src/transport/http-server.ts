import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Binds an HTTP server to `host:port` (0: a free port) and resolves with the bound port. */
export async function listenHttp(server: Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/** Stops listening and closes every connection, idle keep-alive ones included, without waiting for clients. */
export async function closeHttp(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}
