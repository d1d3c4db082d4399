#!lua flags=allow-oom
-- The logger server's commit: acknowledges a written and fsynced batch, records how far each of
-- the consumer's open files is acknowledged (its durable prefix), and merges the batch into the
-- group's per-producer ledger, all atomically. Nothing is changed unless the whole batch can be
-- committed: when an entry is no longer this consumer's (claimed by another server), or a record
-- is already committed by any server of the group, the script says which and the server takes
-- those records back out of its files before it tries again with the rest.
-- allow-oom: a Redis at maxmemory must still take acknowledgements, or trimming never frees it.
--
-- KEYS: 1 stream, 2 checkpoints (hash), 3 origin index (zset), 4 totals (hash), 5 lease,
--       6.. per origin in ARGV's order: its ledger hash, the set of origins of its producer id
-- ARGV: 1 group, 2 consumer, 3 lease value, 4 lease ttl (ms), 5 now (ms), 6 commit token,
--       7 n ids, 8 the ids joined by spaces (one argument: thousands of one-record entries made
--       thousands of arguments to encode and parse), 9 the smallest id, 10 the largest (found
--       by the server: parsing thousands of ids here cost Redis more than the rest of the check),
--       n checkpoints, (field, value)..., n origins, per origin (producer id,
--       app and host: the ledger is kept per origin, so a frame forged under another's producer
--       id cannot make its records look committed): origin key, producer, app, host, records
--       taken out as already committed, reported drops,
--       n written ranges, (start, end)..., n ranges its dedup cache dropped as already written
--       (committed by this consumer before, as far as it knows), (start, end)...,
--       n dead-lettered ranges, (start, end)...,
--       n ranges re-asserted (on this consumer's disk, sent again after Redis lost commits),
--       (start, end)...; then, optionally, the token of this consumer's previous commit.
-- Returns {'OK'}, {'LEASE', holder}, {'LOST', ids...}, {'OVERLAP', origin, start, end, ...} or
-- {'STALE'}: the previous commit's token is not the stored one, so Redis lost that commit (a
-- failover to a replica that had not received it, a restart from an older state); the consumer
-- then commits again with what it has on disk re-asserted.
-- Records whose producer id and number another origin already committed are kept (both are
-- written) and counted as conflicts, on the row of the origin committing second.
-- The token makes a retry safe: a server whose commit got no reply (Redis restarted, connection
-- lost) sends the same commit again until it has an answer; if the first one was applied, the
-- stored token says so and nothing is applied twice.

local MAX_INTERVALS = 512
-- A producer's ledger is kept this long after its last commit (apps restart under new producer
-- ids: Redis must not keep every one it ever saw). The running totals keep counting them.
local RETAIN_MS = 7 * 24 * 3600 * 1000
-- An origin first seen this far into its numbers began before the group knew it (its ledger
-- expired while it was idle) or claims numbers it never sent (a forged header): the numbers below
-- its first are not counted as missing, so no header can make `missing` larger than what was
-- sent. A smaller leading gap (its first frames lost) is counted.
local MAX_LEADING_GAP = 100000

local function parse(text)
  local list = {}
  if text then
    for s, e in string.gmatch(text, '(%d+)-(%d+)') do list[#list + 1] = { tonumber(s), tonumber(e) } end
  end
  return list
end

local function serialize(list)
  local parts = {}
  for k = 1, #list do parts[k] = string.format('%.0f-%.0f', list[k][1], list[k][2]) end
  return table.concat(parts, ',')
end

-- Adds [s, e] to a sorted list of disjoint intervals; returns how many numbers were new.
local function merge(list, s, e)
  local out, added, placed = {}, e - s + 1, false
  for k = 1, #list do
    local iv = list[k]
    if iv[2] + 1 < s then
      out[#out + 1] = iv
    elseif e + 1 < iv[1] then
      if not placed then out[#out + 1] = { s, e }; placed = true end
      out[#out + 1] = iv
    else
      local lo, hi = math.max(s, iv[1]), math.min(e, iv[2])
      if lo <= hi then added = added - (hi - lo + 1) end
      s, e = math.min(s, iv[1]), math.max(e, iv[2])
    end
  end
  if not placed then out[#out + 1] = { s, e } end
  table.sort(out, function(a, b) return a[1] < b[1] end)
  return out, added
end

local group, consumer = ARGV[1], ARGV[2]
local holder = redis.call('GET', KEYS[5])
if holder == false then
  -- expired while this server was paused, and nobody took the name meanwhile: take it back
  redis.call('SET', KEYS[5], ARGV[3], 'PX', ARGV[4])
elseif holder ~= ARGV[3] then
  return { 'LEASE', holder }
end
local now = tonumber(ARGV[5])

if redis.call('HGET', KEYS[2], consumer) == ARGV[6] then return { 'OK' } end

local n = tonumber(ARGV[7])
local ids = {}
for id in string.gmatch(ARGV[8], '%S+') do ids[#ids + 1] = id end
local i = 11
-- Entries pending to another consumer were claimed: that server writes them. Entries pending to
-- nobody were acknowledged already (their records, if some server wrote them, are in the ledger
-- and show as OVERLAP below) or Redis lost them (then this server's copy is the only one).
-- One XPENDING over the batch's range finds the entries still this consumer's; only the others
-- are looked up one by one.
local lost = { 'LOST' }
if n > 0 then
  local rows = redis.call('XPENDING', KEYS[1], group, ARGV[9], ARGV[10], n, consumer)
  -- The usual case, the batch in stream order and all of it still ours: the rows are the ids,
  -- one for one. Anything else takes the lookup below.
  local same = #rows == n
  for k = 1, n do
    if not same then break end
    same = rows[k][1] == ids[k]
  end
  if not same then
    local ours = {}
    for _, row in ipairs(rows) do ours[row[1]] = true end
    for k = 1, n do
      if not ours[ids[k]] then
        local row = redis.call('XPENDING', KEYS[1], group, ids[k], ids[k], 1)[1]
        if row and row[2] ~= consumer then lost[#lost + 1] = ids[k] end
      end
    end
  end
end
if #lost > 1 then return lost end

local checkpoints = {}
local nc = tonumber(ARGV[i]); i = i + 1
for k = 1, nc do checkpoints[#checkpoints + 1] = ARGV[i]; checkpoints[#checkpoints + 1] = ARGV[i + 1]; i = i + 2 end

local batch = {}
local overlaps = { 'OVERLAP' }
local np = tonumber(ARGV[i]); i = i + 1
for p = 1, np do
  local b = { key = KEYS[4 + 2 * p], originsKey = KEYS[5 + 2 * p], origin = ARGV[i], producer = ARGV[i + 1], app = ARGV[i + 2], host = ARGV[i + 3],
    duplicates = tonumber(ARGV[i + 4]), drops = tonumber(ARGV[i + 5]) }
  i = i + 6
  local function ranges()
    local list, count = {}, tonumber(ARGV[i])
    i = i + 1
    for r = 1, count do list[r] = { tonumber(ARGV[i]), tonumber(ARGV[i + 1]) }; i = i + 2 end
    return list
  end
  b.written = ranges()
  b.seen = ranges()
  b.dead = ranges()
  b.reasserted = ranges()
  local stored = redis.call('HMGET', b.key, 'intervals', 'highest', 'covered', 'missing', 'received', 'base',
    'duplicates', 'deadLettered', 'reportedDrops', 'conflicts')
  b.exists = stored[5] ~= false
  b.counts = { received = tonumber(stored[5]) or 0, duplicates = tonumber(stored[7]) or 0, deadLettered = tonumber(stored[8]) or 0,
    reportedDrops = tonumber(stored[9]) or 0, conflicts = tonumber(stored[10]) or 0 }
  b.intervals = parse(stored[1] or nil)
  b.highest = tonumber(stored[2]) or 0
  b.covered = tonumber(stored[3]) or 0
  b.missing = tonumber(stored[4]) or 0
  b.base = tonumber(stored[6]) or 0
  if not b.exists then
    local first
    for _, list in ipairs({ b.written, b.seen, b.dead, b.reasserted }) do
      for _, r in ipairs(list) do
        if first == nil or r[1] < first then first = r[1] end
      end
    end
    if first ~= nil and first - 1 > MAX_LEADING_GAP then b.base = first - 1 end
  end
  for _, r in ipairs(b.written) do
    for _, iv in ipairs(b.intervals) do
      local lo, hi = math.max(r[1], iv[1]), math.min(r[2], iv[2])
      if lo <= hi then
        overlaps[#overlaps + 1] = b.origin
        overlaps[#overlaps + 1] = string.format('%.0f', lo)
        overlaps[#overlaps + 1] = string.format('%.0f', hi)
      end
    end
  end
  batch[p] = b
end
if #overlaps > 1 then return overlaps end
local previous = ARGV[i]
if previous and previous ~= '' and redis.call('HGET', KEYS[2], consumer) ~= previous then return { 'STALE' } end

for k = 1, n, 1000 do redis.call('XACK', KEYS[1], group, unpack(ids, k, math.min(k + 999, n))) end
checkpoints[#checkpoints + 1] = consumer
checkpoints[#checkpoints + 1] = ARGV[6]
redis.call('HSET', KEYS[2], unpack(checkpoints))

local t = { received = 0, duplicates = 0, deadLettered = 0, reportedDrops = 0, missing = 0, producers = 0, conflicts = 0 }
for _, b in ipairs(batch) do
  -- Adds [r1, r2] to the producer's intervals; returns how many numbers were new.
  local function cover(r)
    local added
    b.intervals, added = merge(b.intervals, r[1], r[2])
    b.covered = b.covered + added
    if r[2] > b.highest then b.highest = r[2] end
    return added
  end
  -- Other origins under the same producer id: numbers they committed that this batch wrote too.
  -- Their ledgers share this one's prefix (same group, same hash tag).
  local conflicts = 0
  local prefix = string.sub(b.key, 1, #b.key - #b.origin)
  local member = false
  for _, other in ipairs(redis.call('SMEMBERS', b.originsKey)) do
    if other == b.origin then
      member = true
    else
      for _, iv in ipairs(parse(redis.call('HGET', prefix .. other, 'intervals') or nil)) do
        for _, r in ipairs(b.written) do
          local lo, hi = math.max(r[1], iv[1]), math.min(r[2], iv[2])
          if lo <= hi then conflicts = conflicts + (hi - lo + 1) end
        end
      end
    end
  end
  if not member then redis.call('SADD', b.originsKey, b.origin) end
  redis.call('PEXPIRE', b.originsKey, RETAIN_MS)
  local received, dead = 0, 0
  for _, r in ipairs(b.written) do
    cover(r)
    received = received + (r[2] - r[1] + 1)
  end
  -- Records the consumer's cache dropped: normally committed already (all duplicates); when
  -- Redis lost that commit (restarted from an older state), they are on disk: received.
  for _, r in ipairs(b.seen) do
    local added = cover(r)
    received = received + added
    b.duplicates = b.duplicates + (r[2] - r[1] + 1 - added)
  end
  for _, r in ipairs(b.dead) do dead = dead + cover(r) end
  -- On disk, committed before (nothing to count) unless a failover lost that commit: received.
  for _, r in ipairs(b.reasserted) do received = received + cover(r) end
  -- A producer with very many gaps: its oldest gaps are folded into one interval, so its state
  -- stays small. A late record there is taken as already committed; its gap stays counted.
  while #b.intervals > MAX_INTERVALS do
    local first, second = b.intervals[1], b.intervals[2]
    table.remove(b.intervals, 2)
    first[2] = second[2]
  end
  local missing = b.highest - b.base - b.covered
  if missing < 0 then missing = 0 end
  -- One HSET per origin: the counters are read above, so they are set, not incremented one
  -- command each (a batch of a hundred origins made 1,300 calls).
  local c = b.counts
  local fields = { 'producer', b.producer, 'app', b.app, 'host', b.host,
    'intervals', serialize(b.intervals), 'highest', string.format('%.0f', b.highest),
    'covered', string.format('%.0f', b.covered), 'missing', string.format('%.0f', missing), 'lastSeen', ARGV[5],
    'received', string.format('%.0f', c.received + received), 'duplicates', string.format('%.0f', c.duplicates + b.duplicates),
    'deadLettered', string.format('%.0f', c.deadLettered + dead), 'reportedDrops', string.format('%.0f', c.reportedDrops + b.drops),
    'conflicts', string.format('%.0f', c.conflicts + conflicts) }
  if not b.exists then
    fields[#fields + 1] = 'firstSeen'
    fields[#fields + 1] = ARGV[5]
    fields[#fields + 1] = 'base'
    fields[#fields + 1] = string.format('%.0f', b.base)
    t.producers = t.producers + 1
  end
  redis.call('HSET', b.key, unpack(fields))
  redis.call('PEXPIRE', b.key, RETAIN_MS)
  redis.call('ZADD', KEYS[3], now, b.origin)
  t.received = t.received + received
  t.duplicates = t.duplicates + b.duplicates
  t.deadLettered = t.deadLettered + dead
  t.reportedDrops = t.reportedDrops + b.drops
  t.conflicts = t.conflicts + conflicts
  t.missing = t.missing + (missing - b.missing)
end
if np > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. string.format('%.0f', now - RETAIN_MS)) end
for field, value in pairs(t) do
  if value ~= 0 then redis.call('HINCRBY', KEYS[4], field, string.format('%.0f', value)) end
end
return { 'OK' }
