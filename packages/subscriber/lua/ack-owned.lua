-- StreamReader.ackOwned: acknowledges the entries still pending to this consumer and returns the
-- ids another consumer claimed meanwhile, atomically (nobody can claim between the check and the
-- XACK).
-- KEYS[1] the stream; ARGV: group, consumer, first id, last id, count, then the ids.
local owned = {}
for _, row in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[2])) do
  owned[row[1]] = true
end
local mine, lost = {}, {}
for i = 6, #ARGV do
  if owned[ARGV[i]] then table.insert(mine, ARGV[i]) else table.insert(lost, ARGV[i]) end
end
-- unpack has a stack limit: XACK in slices of 1000.
for i = 1, #mine, 1000 do
  redis.call('XACK', KEYS[1], ARGV[1], unpack(mine, i, math.min(i + 999, #mine)))
end
return lost
