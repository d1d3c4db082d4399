import { connect } from 'node:net';
import { sleep } from './process';
import { startFaultProxy, startRedis, tcpAskForTest, type RedisServer } from './testing';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(() => redis.dispose());

/** Opens a connection and keeps what it receives, and how it ended. */
function session(port: number) {
  const socket = connect(port, '127.0.0.1');
  let received = '';
  socket.on('data', (data) => (received += data.toString()));
  const closed = new Promise<string>((resolve) => {
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
    socket.on('close', () => resolve('closed'));
  });
  return { socket, received: () => received, closed };
}

describe('fault proxy', () => {
  it('passes bytes, holds them through a blackhole and delivers them after it, without losing any', async () => {
    const proxy = await startFaultProxy(redis.port);
    try {
      expect(await tcpAskForTest(proxy.port, 'PING\r\n')).toBe('+PONG\r\n');
      const s = session(proxy.port);
      await new Promise((r) => s.socket.on('connect', r));
      proxy.setMode('blackhole');
      s.socket.write('SET held 1\r\nGET held\r\n');
      await sleep(300);
      expect(s.received()).toBe('');
      proxy.setMode('pass');
      for (let i = 0; i < 40 && s.received() !== '+OK\r\n$1\r\n1\r\n'; i++) await sleep(25);
      expect(s.received()).toBe('+OK\r\n$1\r\n1\r\n');
      s.socket.destroy();
    } finally {
      await proxy.close();
    }
  });

  it('turns to blackhole at the request that carries a chosen pattern, holding it and what follows', async () => {
    const proxy = await startFaultProxy(redis.port);
    try {
      const s = session(proxy.port);
      await new Promise((r) => s.socket.on('connect', r));
      proxy.blackholeWhenSent('marker');
      s.socket.write('SET before 1\r\n');
      for (let i = 0; i < 40 && s.received() !== '+OK\r\n'; i++) await sleep(25);
      expect(s.received()).toBe('+OK\r\n');
      s.socket.write('SET marker 2\r\n');
      await sleep(300);
      expect({ mode: proxy.mode, received: s.received() }).toEqual({ mode: 'blackhole', received: '+OK\r\n' });
      expect(await tcpAskForTest(redis.port, 'EXISTS marker\r\n')).toBe(':0\r\n');
      proxy.setMode('pass');
      for (let i = 0; i < 40 && s.received() !== '+OK\r\n+OK\r\n'; i++) await sleep(25);
      expect(s.received()).toBe('+OK\r\n+OK\r\n');
      s.socket.destroy();
    } finally {
      await proxy.close();
    }
  });

  it('resets open and new connections, and answers HTTP 503 when refusing', async () => {
    const proxy = await startFaultProxy(redis.port);
    try {
      const s = session(proxy.port);
      await new Promise((r) => s.socket.on('connect', r));
      proxy.setMode('reset');
      expect(await s.closed).toBe('ECONNRESET');
      await expect(tcpAskForTest(proxy.port, 'PING\r\n', 500)).rejects.toThrow();
      proxy.setMode('http-503');
      expect(await tcpAskForTest(proxy.port, 'GET / HTTP/1.1\r\n\r\n')).toMatch(/^HTTP\/1.1 503 /);
      proxy.setMode('pass');
      expect(await tcpAskForTest(proxy.port, 'PING\r\n')).toBe('+PONG\r\n');
    } finally {
      await proxy.close();
    }
  });
});
