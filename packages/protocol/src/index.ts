export {
  ProtocolError,
  InvalidNameError,
  InvalidUtf8Error,
  FrameTooLargeError,
  FrameFormatError,
  UnsupportedVersionError,
  RecordTooLargeError,
  RecordInvalidError,
} from './errors';
export type { ProtocolErrorCode, ProtocolErrorContext } from './errors';
export { LEVELS, LEVEL_VALUES, isLevel } from './levels';
export type { Level } from './levels';
export { MAX_NAME_LENGTH, nameProblem, isValidName, assertValidName, toValidName } from './names';
export { streamKey, deadLetterKey, pubsubChannel, groupStateKeys, DEFAULT_GROUP, FRAME_FIELD } from './keys';
export type { SerializedError, Fields, WireRecord, LogRecord } from './record';
export {
  FRAME_MAGIC,
  DEFAULT_LIMITS,
  encodeFrameHeader,
  encodeRecord,
  encodeFrame,
  isFrame,
  decodeUtf8,
  decodeFrame,
  decodeRecord,
  parseWireRecord,
} from './frame';
export type { FrameHeader, DecodedFrame, DecodeRecordOptions } from './frame';
export { LIMITS } from './limits';
export type { Limits } from './limits';
export { reservedKeyMap } from './scan';
export { escapeUnsafeJson, quote } from './escape';
