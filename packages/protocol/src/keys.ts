import { assertValidName } from './names';

// Keys of one channel share the hash tag {channel}, so they live in one Redis Cluster slot and
// the server can touch the stream and its dead-letter stream in one pipeline.

/** The Redis Stream a channel's frames are XADDed to. */
export function streamKey(channel: string): string {
  return `log:{${assertValidName('channel', channel)}}`;
}

/** The stream that receives undecodable or invalid entries, with the reason. */
export function deadLetterKey(channel: string): string {
  return `log:{${assertValidName('channel', channel)}}:dead`;
}

/** The Pub/Sub channel: the bare name, so existing publishers (`PUBLISH logger text`) keep working. */
export function pubsubChannel(channel: string): string {
  return assertValidName('channel', channel);
}

/** Consumer group the logger servers share when LOG_GROUP is not set. */
export const DEFAULT_GROUP = 'logger-server';

/** Field of a stream entry that holds the frame. */
export const FRAME_FIELD = 'f';
