import { createServer, connect, type Socket } from 'node:net';
import { freePort } from './process';

/**
 * A TCP proxy in front of a real server, for network trouble the server itself cannot show:
 * cut() turns it into a black hole (connections stay open, every byte either way is dropped,
 * like a partition or a dead route), heal() lets bytes through again.
 */
export interface TcpProxy {
  readonly port: number;
  /** http://127.0.0.1:<port> */
  readonly endpoint: string;
  cut(): void;
  heal(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const port = await freePort();
  let cut = false;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      sockets.add(from);
      from.on('data', (data: Buffer) => {
        if (!cut) to.write(data);
      });
      from.on('error', () => to.destroy());
      from.on('close', () => {
        sockets.delete(from);
        to.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    cut: () => {
      cut = true;
    },
    heal: () => {
      cut = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
