-- Register a configured agent; live status, limit and load survive.
-- KEYS[1] agent hash, KEYS[2] the site's agent set
-- ARGV[1] key base, ARGV[2] agent id, ARGV[3] name, ARGV[4] departments JSON, ARGV[5] cap,
-- ARGV[6] skills JSON, ARGV[7..] every department of the site
local cap = tonumber(ARGV[5])
redis.call('HSET', KEYS[1], 'name', ARGV[3], 'depts', ARGV[4], 'cap', cap, 'skills', ARGV[6])
redis.call('HSETNX', KEYS[1], 'status', 'offline')
redis.call('HSETNX', KEYS[1], 'load', 0)
redis.call('HSETNX', KEYS[1], 'idle_since', 0)
redis.call('HSETNX', KEYS[1], 'max', cap)
if tonumber(redis.call('HGET', KEYS[1], 'max')) > cap then redis.call('HSET', KEYS[1], 'max', cap) end
redis.call('SADD', KEYS[2], ARGV[2])
local mine = {}
for _, d in ipairs(cjson.decode(ARGV[4])) do mine[d] = true end
local online = redis.call('HGET', KEYS[1], 'status') == 'online'
for i = 7, #ARGV do
  local set = ARGV[1] .. 'd:' .. ARGV[i] .. ':agents'
  local on = ARGV[1] .. 'd:' .. ARGV[i] .. ':online'
  if mine[ARGV[i]] then redis.call('SADD', set, ARGV[2]) else redis.call('SREM', set, ARGV[2]) end
  if mine[ARGV[i]] and online then redis.call('SADD', on, ARGV[2]) else redis.call('SREM', on, ARGV[2]) end
  if not mine[ARGV[i]] then redis.call('ZREM', ARGV[1] .. 'd:' .. ARGV[i] .. ':avail', ARGV[2]) end
end
sb_index(ARGV[1], ARGV[2])
return 1
