// Runs s3rver in a child process of its own, so tests can freeze (SIGSTOP) or kill the S3 server
// exactly as they do redis-server. Usage: node s3rver-main.js <port> <directory> [bucket...]
import S3rver from 's3rver';

const [port, directory, ...buckets] = process.argv.slice(2);
const server = new S3rver({
  address: '127.0.0.1',
  port: Number(port),
  directory,
  silent: true,
  configureBuckets: buckets.map((name) => ({ name, configs: [] })),
});
server.run().then(
  () => process.stdout.write(`READY ${port}\n`),
  (error: unknown) => {
    process.stderr.write(`s3rver failed: ${String(error)}\n`);
    process.exit(1);
  },
);
// Fire and forget: the process exits in finally() whether close() resolves or rejects.
process.on('SIGTERM', () => void server.close().finally(() => process.exit(0)));
