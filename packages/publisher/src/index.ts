export { createPublisher } from './logger';
export type { Logger, LogMethod } from './logger';
export type { PublisherStats } from './core';
export type { PublisherOptions } from './options';
export { DEFAULTS } from './options';
export { PublisherError, InvalidOptionError, RedisUnreachableError, RecordsGivenUpError, ReplicasBehindError } from './errors';
export type { PublisherErrorCode } from './errors';
export { RedisTransport } from './winston';
export type { RedisTransportOptions } from './winston';
