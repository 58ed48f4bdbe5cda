-- A page of a queue in serving order with when each member entered it: {conv, since, conv,
-- since, ...}. Read a page at a time, so a queue of ten thousand does not hold Redis for tens of
-- milliseconds.
-- KEYS[1] queue sorted set; ARGV[1] key base, ARGV[2] first rank, ARGV[3] how many
local first = tonumber(ARGV[2])
local out = {}
for _, conv in ipairs(redis.call('ZRANGE', KEYS[1], first, first + tonumber(ARGV[3]) - 1)) do
  out[#out + 1] = conv
  out[#out + 1] = redis.call('HGET', ARGV[1] .. 'c:' .. conv, 'queued_since') or '0'
end
return out
