import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { TestKitError } from './errors';
import { freePort, serviceControls, spawnService, tempDir, waitUntil, which, type ServiceControls } from './process';

/** Which S3-compatible server to run: s3rver (npm, always here) or moto_server (Python moto, where installed). */
export type S3Implementation = 's3rver' | 'moto';

export interface S3ServerOptions {
  implementation?: S3Implementation;
  /** Buckets created at start. @defaultValue ['logs'] */
  buckets?: string[];
  /** Port to listen on (to start S3 late at an address a client already uses). @defaultValue a free port */
  port?: number;
  /**
   * moto only: check every request's credentials against moto's IAM, which knows none, so each is
   * refused (InvalidAccessKeyId), as AWS refuses a wrong key. No bucket is created.
   */
  refuseCredentials?: boolean;
}

/** A real S3-compatible HTTP server owned by a test, used through the AWS SDK like AWS itself. */
export interface S3Server extends ServiceControls {
  readonly implementation: S3Implementation;
  readonly endpoint: string;
  readonly port: number;
  readonly region: string;
  readonly credentials: { accessKeyId: string; secretAccessKey: string };
  /** Client settings for @aws-sdk/client-s3: endpoint, path-style, region, credentials. */
  readonly clientConfig: {
    endpoint: string;
    forcePathStyle: true;
    region: string;
    credentials: { accessKeyId: string; secretAccessKey: string };
  };
}

let motoChecked: boolean | undefined;

/** True when moto_server runs here (it is the second, independent S3 implementation). */
export function motoAvailable(): boolean {
  if (motoChecked === undefined) {
    const path = which('moto_server');
    motoChecked = path !== undefined && spawnSync(path, ['--help'], { stdio: 'ignore', timeout: 20_000 }).status === 0;
  }
  return motoChecked;
}

/** Implementations to run a suite against: s3rver always, moto_server where installed. */
export function s3Implementations(): S3Implementation[] {
  return motoAvailable() ? ['s3rver', 'moto'] : ['s3rver'];
}

function httpStatus(port: number, method: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Starts an S3-compatible server on a free port and creates the buckets. */
export async function startS3(options: S3ServerOptions = {}): Promise<S3Server> {
  const implementation = options.implementation ?? 's3rver';
  const buckets = options.buckets ?? ['logs'];
  if (options.refuseCredentials && implementation !== 'moto') throw new TestKitError('MOTO_MISSING', 'refuseCredentials needs moto_server');
  if (implementation === 'moto' && !motoAvailable()) {
    throw new TestKitError('MOTO_MISSING', 'moto_server is not installed: pip install "moto[server]"');
  }
  const port = options.port ?? (await freePort());
  const dir = tempDir('s3');
  let child: ChildProcess | undefined;

  const start = async () => {
    const service =
      implementation === 's3rver'
        ? // from src (jest) or dist alike, the compiled script lives in dist/
          spawnService(process.execPath, [join(__dirname, '..', 'dist', 's3rver-main.js'), String(port), dir, ...buckets])
        : spawnService(which('moto_server') as string, ['-H', '127.0.0.1', '-p', String(port)], {
            env: options.refuseCredentials ? { ...process.env, INITIAL_NO_AUTH_ACTION_COUNT: '0' } : process.env,
          });
    child = service.child;
    await waitUntil(`${implementation} on port ${port}`, async () => (await httpStatus(port, 'GET', '/')) > 0, {
      child,
      output: service.output,
      timeoutMs: 20_000,
    });
    if (implementation === 'moto' && !options.refuseCredentials) {
      for (const bucket of buckets) await httpStatus(port, 'PUT', `/${bucket}`);
    }
  };
  await start();

  const credentials = implementation === 's3rver' ? { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } : { accessKeyId: 'testing', secretAccessKey: 'testing' };
  const endpoint = `http://127.0.0.1:${port}`;
  // s3rver keeps its data directory across a restart; moto starts empty.
  const server: S3Server = Object.assign(
    serviceControls(() => child, start, dir),
    {
      implementation,
      endpoint,
      port,
      region: 'us-east-1',
      credentials,
      clientConfig: { endpoint, forcePathStyle: true as const, region: 'us-east-1', credentials },
    },
  );
  return server;
}
