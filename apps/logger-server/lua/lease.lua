#!lua flags=allow-oom
-- Takes or renews a consumer's lease: sets it when this server holds it or nobody does (at start,
-- or after it expired while this server was paused). allow-oom: a full Redis must not stop a
-- server from starting, or it could never drain the stream that fills it.
-- KEYS[1] lease; ARGV: 1 value, 2 ttl (ms).
-- Returns '' when held, else the value of the server that holds it now.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ''
end
return holder
