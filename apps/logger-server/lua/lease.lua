-- Renews a consumer's lease while this server holds it; takes it again when it expired and
-- nobody took it meanwhile (the server was paused). KEYS[1] lease; ARGV: 1 value, 2 ttl (ms).
-- Returns '' when held, else the value of the server that holds it now.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ''
end
return holder
