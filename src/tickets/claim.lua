-- Take due deliveries and hide them from other nodes until the lease ends. A node that dies
-- holding some simply lets the lease run out; another node then takes them over.
-- KEYS[1] due sorted set; ARGV[1] now, ARGV[2] lease until, ARGV[3] max, ARGV[4] delivery key prefix
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local body = redis.call('GET', ARGV[4] .. id)
  if body then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    out[#out + 1] = body
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
