import { FRAME_FIELD, decodeFrame, decodeRecord, streamKey, type FrameHeader, type LogRecord } from '@log/protocol';
import { createClient, RESP_TYPES } from 'redis';

/** Every frame in a channel's stream, decoded (records and headers), read with a plain client. */
export async function readStream(url: string, channel: string): Promise<{ records: LogRecord[]; headers: FrameHeader[] }> {
  const client = createClient({ url });
  await client.connect();
  try {
    const entries = (await client.sendCommand(['XRANGE', streamKey(channel), '-', '+'], {
      typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer },
    })) as Array<[Buffer, Buffer[]]>;
    const records: LogRecord[] = [];
    const headers: FrameHeader[] = [];
    for (const [id, fields] of entries) {
      expect(fields[0]!.toString()).toBe(FRAME_FIELD);
      const frame = decodeFrame(fields[1]!, { entryId: id.toString() });
      headers.push(frame.header);
      for (let i = 0; i < frame.lines.length; i++) records.push(decodeRecord(frame, i));
    }
    return { records, headers };
  } finally {
    client.destroy();
  }
}
