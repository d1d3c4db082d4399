#!lua
-- The Pub/Sub bridge's fenced forward: XADDs frames into the stream, and renews the bridge lease,
-- only while this server holds it. Strict: a lease that expired is not taken back here (another
-- server may have held it meanwhile and forwarded what this one still has queued); the bridge
-- then starts over as a standby, with a barrier (see pubsub-bridge.ts).
-- KEYS[1] lease, KEYS[2] stream; ARGV: 1 lease value, 2 ttl (ms), 3 frame field, 4.. frames.
-- Returns '' when held (and the frames added), else the holder's value or 'nobody'.
local holder = redis.call('GET', KEYS[1])
if holder ~= ARGV[1] then return holder or 'nobody' end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 4, #ARGV do redis.call('XADD', KEYS[2], '*', ARGV[3], ARGV[i]) end
return ''
