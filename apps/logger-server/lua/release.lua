#!lua flags=allow-oom
-- Gives a lease up, only if this server still holds it. KEYS[1] lease; ARGV[1] value.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
