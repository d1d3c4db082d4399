import { spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestKitError } from './errors';
import { freePort, serviceControls, spawnService, tcpAsk, tempDir, waitUntil, which, type ServiceControls } from './process';

export interface RedisServerOptions {
  /** Append-only file on (fsync every second), so a restart after kill keeps data. @defaultValue false */
  appendOnly?: boolean;
  /** Extra redis-server arguments, e.g. ['--maxmemory', '10mb']. */
  args?: string[];
  /**
   * Also listen with TLS on a second port, with a certificate for 127.0.0.1 signed by a CA made
   * for this server (openssl): `tls.url` is `rediss://...`, `tls.caFile` the CA to trust.
   */
  tls?: boolean;
}

/** The TLS side of a RedisServer started with `tls: true`. */
export interface RedisTls {
  readonly url: string;
  readonly port: number;
  /** PEM of the CA that signed the server's certificate. */
  readonly caFile: string;
  /** PEM of another CA, which did not: a client trusting only it must refuse the server. */
  readonly wrongCaFile: string;
}

/** A real redis-server owned by a test: its own port and data directory. */
export interface RedisServer extends ServiceControls {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** FLUSHALL: an empty server for the next round of a benchmark or test. */
  flushAll(): Promise<void>;
  /** Present when started with `tls: true`. */
  readonly tls: RedisTls | undefined;
}

export const REDIS_INSTALL_HINT = 'apt-get install -y redis-server';

/** Path of redis-server, or a TestKitError that says how to install it. */
export function redisServerBinary(): string {
  const path = process.env.REDIS_SERVER_BIN ?? which('redis-server');
  if (!path) {
    throw new TestKitError('REDIS_SERVER_MISSING', `redis-server (>= 6.2) is not installed; tests need a real one. Install it with: ${REDIS_INSTALL_HINT}` + ' (or set REDIS_SERVER_BIN to its path)');
  }
  return path;
}

/** Starts a redis-server on a free port with a temp data directory and waits until it answers PING. */
export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const binary = redisServerBinary();
  const port = await freePort();
  const dir = tempDir('redis');
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    options.appendOnly ? 'yes' : 'no',
    '--appendfsync',
    'everysec',
    '--daemonize',
    'no',
    '--loglevel',
    'warning',
    ...(options.args ?? []),
  ];
  let tls: RedisTls | undefined;
  if (options.tls) {
    const tlsPort = await freePort();
    const files = makeCertificates(dir);
    args.push('--tls-port', String(tlsPort), '--tls-cert-file', files.cert, '--tls-key-file', files.key, '--tls-ca-cert-file', files.ca, '--tls-auth-clients', 'no');
    tls = { url: `rediss://127.0.0.1:${tlsPort}`, port: tlsPort, caFile: files.ca, wrongCaFile: files.wrongCa };
  }
  let child: ChildProcess | undefined;

  const start = async () => {
    const service = spawnService(binary, args);
    child = service.child;
    await waitUntil(`redis-server on port ${port}`, async () => (await tcpAsk(port, 'PING\r\n')).startsWith('+PONG'), {
      child,
      output: service.output,
    });
  };
  await start();

  const flushAll = async () => {
    const reply = await tcpAsk(port, 'FLUSHALL\r\n', 10_000);
    if (!reply.startsWith('+OK')) throw new TestKitError('COMMAND_FAILED', `FLUSHALL on port ${port} answered ${reply.trim()}`);
  };
  const server: RedisServer = Object.assign(
    serviceControls(() => child, start, dir),
    { url: `redis://127.0.0.1:${port}`, port, dir, flushAll, tls },
  );
  return server;
}

/** A CA, a certificate for 127.0.0.1 it signs, and a second CA that signs nothing, made with openssl in `dir`. */
function makeCertificates(dir: string): { ca: string; cert: string; key: string; wrongCa: string } {
  const openssl = which('openssl');
  if (!openssl) throw new TestKitError('OPENSSL_MISSING', 'openssl is needed for a TLS redis-server: apt-get install -y openssl');
  const run = (...args: string[]) => {
    const result = spawnSync(openssl, args, { cwd: dir, encoding: 'utf8' });
    if (result.status !== 0) throw new TestKitError('OPENSSL_FAILED', `openssl ${args.join(' ')} failed: ${result.stderr}`);
  };
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=test-kit CA');
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'wrong-ca.key', '-out', 'wrong-ca.crt', '-days', '2', '-subj', '/CN=test-kit CA');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'san.cnf');
  return { ca: join(dir, 'ca.crt'), cert: join(dir, 'server.crt'), key: join(dir, 'server.key'), wrongCa: join(dir, 'wrong-ca.crt') };
}
