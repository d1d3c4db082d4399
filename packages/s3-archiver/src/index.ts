export { archiveFile, manifestKey } from './archiver';
export type { ArchiveOptions, ArchiveResult } from './archiver';
export { archiveKey, archivePartition } from './key';
export type { ArchiveKeyParts } from './key';
export { ArchiveError } from './errors';
export type { ArchiveErrorCode } from './errors';
