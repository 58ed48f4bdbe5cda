-- A queue in serving order with when each member entered it: {conv, since, conv, since, ...}
-- KEYS[1] queue sorted set; ARGV[1] key base
local out = {}
for _, conv in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  out[#out + 1] = conv
  out[#out + 1] = redis.call('HGET', ARGV[1] .. 'c:' .. conv, 'queued_since') or '0'
end
return out
