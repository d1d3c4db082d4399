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
  /**
   * Lets `bytes` more bytes through towards the server (all connections together), then cuts,
   * in the middle of a chunk if need be: a request frozen part-way through its body, which no
   * timing of cut() can promise. Resolves when the cut has happened.
   */
  cutAfter(bytes: number): Promise<void>;
  heal(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const port = await freePort();
  let cut = false;
  /** Bytes still let through towards the server before cutAfter's cut, and who waits for it. */
  let allowance: { bytes: number; reached: () => void } | undefined;
  const sockets = new Set<Socket>();
  const towardsServer = (data: Buffer): Buffer | undefined => {
    if (cut) return undefined;
    if (!allowance) return data;
    if (data.length < allowance.bytes) {
      allowance.bytes -= data.length;
      return data;
    }
    const passed = data.subarray(0, allowance.bytes);
    cut = true;
    allowance.reached();
    allowance = undefined;
    return passed;
  };
  const server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      sockets.add(from);
      from.on('data', (data: Buffer) => {
        const passed = from === client ? towardsServer(data) : cut ? undefined : data;
        if (passed && passed.length > 0) to.write(passed);
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
    cutAfter: (bytes) =>
      new Promise<void>((resolve) => {
        allowance = { bytes, reached: resolve };
      }),
    heal: () => {
      cut = false;
      allowance = undefined;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
