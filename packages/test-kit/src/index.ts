export { TestKitError } from './errors';
export { freePort, tempDir, removeDir, which, sleep, waitUntil, spawnService, stopProcess } from './process';
export type { ServiceControls } from './process';
export { startRedis, redisServerBinary, REDIS_INSTALL_HINT } from './redis';
export type { RedisServer, RedisServerOptions } from './redis';
export { startS3, motoAvailable, s3Implementations } from './s3';
export type { S3Server, S3ServerOptions, S3Implementation } from './s3';
export { startTcpProxy } from './proxy';
export type { TcpProxy } from './proxy';
