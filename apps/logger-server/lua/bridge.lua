#!lua
-- The Pub/Sub bridge's lease, and its fenced forward. KEYS[1] lease, KEYS[2] position, KEYS[3]
-- stream (one hash slot). ARGV: 1 'take' or 'forward', 2 lease value, 3 ttl (ms), then for
-- 'forward': 4 position ('' keeps it), 5 frame field, 6.. frames.
-- take: takes the lease when free (or already this server's); returns {'', position} (no
-- position when no bridge ever forwarded) when held, else {holder}.
-- forward: adds the frames, records where they end (the position, see bridge-ring.ts) and renews
-- the lease, all only while this server holds it. Strict: a lease that expired is not taken back
-- here (another server may have held it meanwhile and forwarded the same messages). Returns {''}
-- when held (and done), else {holder} or {'nobody'}.
local holder = redis.call('GET', KEYS[1])
if ARGV[1] == 'take' then
  if holder and holder ~= ARGV[2] then return {holder} end
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return {'', redis.call('GET', KEYS[2])}
end
if holder ~= ARGV[2] then return {holder or 'nobody'} end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
for i = 6, #ARGV do redis.call('XADD', KEYS[3], '*', ARGV[5], ARGV[i]) end
if ARGV[4] ~= '' then redis.call('SET', KEYS[2], ARGV[4]) end
return {''}
