-- StreamReader.read with batchBytes: the further new entries of a batch in one round trip, where
-- one XREADGROUP per round trip left the server waiting on Redis for most of a batch of small
-- entries. Reads as the reader did: XREADGROUP (no BLOCK) of count entries, while each read came
-- back full and the batch is under its bytes; count is what the bytes left hold at the size of
-- the largest entry so far, from `least` to `most` (so one read holds at most `most` entries,
-- whatever their size).
-- KEYS[1] the stream; ARGV: group, consumer, bytes left, least, most, largest entry so far (bytes),
-- most reads.
-- Returns the entries read, as XREADGROUP gives them ({id, {field, value, ...}} each).
local group, consumer = ARGV[1], ARGV[2]
local left, least, most = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local largest, reads = tonumber(ARGV[6]), tonumber(ARGV[7])
local out = {}
for _ = 1, reads do
  if left <= 0 then break end
  local count = math.min(most, math.max(least, math.floor(left / largest)))
  local reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'STREAMS', KEYS[1], '>')
  if not reply then break end
  local entries = reply[1][2]
  for _, entry in ipairs(entries) do
    out[#out + 1] = entry
    local size = 0
    for _, part in ipairs(entry[2]) do size = size + #part end
    left = left - size
    if size > largest then largest = size end
  end
  if #entries < count then break end
end
return out
