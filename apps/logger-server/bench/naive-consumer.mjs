// The baseline the server is measured against (issue #11): the simplest durable consumer one
// would write by hand. One batch at a time: XREADGROUP COUNT 500 (entries as raw bytes), write
// the entries' bytes to one file, fdatasync, XACK; no decoding, no dedup, no validation.
// Run by server.bench.mjs as its own process, like the server: node naive-consumer.mjs <url> <stream> <group> <file> <entries>
// Prints "ready" once connected, and exits when it has acknowledged <entries> entries.
import { closeSync, fdatasyncSync, openSync, writevSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { RESP_TYPES, createClient } = require('redis');

const [url, stream, group, file, total] = process.argv.slice(2);
const entries = Number(total);
const client = createClient({ url });
client.on('error', () => {});
await client.connect();
await client.sendCommand(['XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM']).catch(() => undefined);
const fd = openSync(file, 'a');
const asBuffers = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } };
process.stdout.write('ready\n');
let acked = 0;
while (acked < entries) {
  const reply = await client.sendCommand(['XREADGROUP', 'GROUP', group, 'naive', 'COUNT', '500', 'BLOCK', '1000', 'STREAMS', stream, '>'], asBuffers);
  if (reply === null) continue;
  // RESP3 map stream -> entries, or RESP2 [[stream, entries]]
  const batch = reply instanceof Map ? reply.values().next().value : Array.isArray(reply) ? reply[0][1] : Object.values(reply)[0];
  const ids = [];
  const chunks = [];
  for (const [id, fields] of batch) {
    ids.push(id.toString());
    if (fields) for (let i = 1; i < fields.length; i += 2) chunks.push(fields[i]);
  }
  // writev takes at most IOV_MAX (1024) buffers per call; a batch holds at most 500 entries.
  let written = 0;
  const length = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  while (written < length) {
    let skip = written;
    const rest = [];
    for (const chunk of chunks) {
      if (skip >= chunk.length) skip -= chunk.length;
      else {
        rest.push(skip > 0 ? chunk.subarray(skip) : chunk);
        skip = 0;
      }
    }
    written += writevSync(fd, rest);
  }
  fdatasyncSync(fd);
  await client.sendCommand(['XACK', stream, group, ...ids]);
  acked += ids.length;
}
closeSync(fd);
client.destroy();
process.stdout.write('done\n');
