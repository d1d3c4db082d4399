import { createServer, connect, type Socket } from 'node:net';
import { freePort } from './process';

/**
 * What a FaultProxy does with traffic:
 * - `pass`: forwards bytes both ways;
 * - `blackhole`: a partition as TCP lives through one: connections stay open, nothing moves, and
 *   what was sent meanwhile arrives once the mode is `pass` again (TCP retransmits; a stream never
 *   silently loses bytes in its middle, which would desynchronize a pipelined protocol like Redis's);
 * - `reset`: every connection, open or new, is reset (RST): a host that crashed, or a partition
 *   long enough for the peers to give the connection up;
 * - `http-503`: the next bytes a client sends are answered with an HTTP 503 and the connection
 *   closed: a service that is up but refuses work (S3's "ServiceUnavailable").
 */
export type ProxyMode = 'pass' | 'blackhole' | 'reset' | 'http-503';

/** A TCP proxy whose failure mode can be switched at any time (the soak's nemesis drives it). */
export interface FaultProxy {
  readonly port: number;
  /** http://127.0.0.1:<port> */
  readonly endpoint: string;
  readonly mode: ProxyMode;
  setMode(mode: ProxyMode): void;
  /**
   * Turns to `blackhole` the moment a client sends bytes containing `pattern`, holding that
   * chunk too: a request that is sent and never answered, at exactly the request a test chooses
   * (a Lua script's SHA-1, say) instead of whenever a timer fires.
   */
  blackholeWhenSent(pattern: string | Buffer): void;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
  /** Bytes that arrived just as a blackhole began, delivered (in order) when it ends. */
  held: Array<[Socket, Buffer]>;
}

const BODY = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code><Message>refused by the test-kit fault proxy</Message></Error>';
const HTTP_503 = `HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/xml\r\ncontent-length: ${Buffer.byteLength(BODY)}\r\nconnection: close\r\n\r\n${BODY}`;

export async function startFaultProxy(targetPort: number, { port }: { port?: number } = {}): Promise<FaultProxy> {
  const listenPort = port ?? (await freePort());
  let mode: ProxyMode = 'pass';
  let trigger: Buffer | undefined;
  const pairs = new Set<Pair>();

  const refuse = (pair: Pair) => {
    pair.upstream.destroy();
    if (mode === 'reset') pair.client.resetAndDestroy();
    else pair.client.end(HTTP_503);
  };
  const hold = (pair: Pair) => {
    pair.client.pause();
    pair.upstream.pause();
  };
  const release = (pair: Pair) => {
    for (const [to, data] of pair.held.splice(0)) to.write(data);
    pair.client.resume();
    pair.upstream.resume();
  };

  function setMode(next: ProxyMode): void {
    const previous = mode;
    mode = next;
    for (const pair of [...pairs]) {
      if (next === 'blackhole') hold(pair);
      else if (previous === 'blackhole') release(pair);
      // A crashed host resets what was open; a refusing service answers the next request instead.
      if (next === 'reset') refuse(pair);
    }
  }

  const server = createServer((client) => {
    client.on('error', () => {});
    if (mode === 'reset') {
      client.resetAndDestroy();
      return;
    }
    const pair: Pair = { client, upstream: connect(targetPort, '127.0.0.1'), held: [] };
    pairs.add(pair);
    if (mode === 'blackhole') hold(pair);
    const forward = (to: Socket) => (data: Buffer) => {
      if (trigger !== undefined && to === pair.upstream && data.includes(trigger)) {
        trigger = undefined;
        setMode('blackhole');
      }
      if (mode === 'pass') to.write(data);
      else if (mode === 'blackhole') pair.held.push([to, data]);
      else if (to === pair.upstream) refuse(pair);
      else to.write(data); // http-503: a response already on its way still arrives
    };
    client.on('data', forward(pair.upstream));
    pair.upstream.on('data', forward(client));
    for (const [from, to] of [
      [client, pair.upstream],
      [pair.upstream, client],
    ] as const) {
      from.on('error', () => to.destroy());
      from.on('close', () => {
        pairs.delete(pair);
        to.destroy();
      });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenPort, '127.0.0.1', resolve);
  });
  return {
    port: listenPort,
    endpoint: `http://127.0.0.1:${listenPort}`,
    get mode() {
      return mode;
    },
    setMode,
    blackholeWhenSent: (pattern) => {
      trigger = Buffer.from(pattern);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const { client, upstream } of pairs) {
          client.destroy();
          upstream.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
