export { StreamReader, compareIds, idRange } from './stream-reader';
export type { ReadResult, StreamEntry, StreamReaderOptions } from './stream-reader';
export { PubSubReader } from './pubsub-reader';
export type { PubSubReaderOptions } from './pubsub-reader';
export { SubscriberError } from './errors';
export type { SubscriberErrorCode } from './errors';
export { LossReportReader, toPairs } from './loss-report';
export type { LossReport, ProducerReport, ReportTotals } from './loss-report';
export { deadLetterCommand } from './dead-letter';
