-- Give the head of a queue to the best eligible agent, atomically: nobody exceeds a limit even
-- with many nodes assigning at once. Best: lowest load/limit, then idle longest, then id.
-- KEYS[1] queue sorted set, KEYS[2] the department's agent set
-- ARGV[1] key base, ARGV[2] now (ms), ARGV[3] grace (ms), ARGV[4] department
if redis.call('ZCARD', KEYS[1]) == 0 then return false end
local base, now, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local best, bestLoad, bestMax, bestIdle
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local flat = redis.call('HGETALL', base .. 'a:' .. id)
  local h, present = {}, 0
  for i = 1, #flat, 2 do
    local k, v = flat[i], flat[i + 1]
    h[k] = v
    if string.sub(k, 1, 5) == 'node:' then
      local t = tonumber(v)
      if t > present then present = t end
    end
  end
  local max, load, idle = tonumber(h.max or '0'), tonumber(h.load or '0'), tonumber(h.idle_since or '0')
  if h.status == 'online' and load < max and present + grace > now then
    local better = best == nil
    if not better then
      local a, b = load * bestMax, bestLoad * max
      better = a < b or (a == b and (idle < bestIdle or (idle == bestIdle and id < best)))
    end
    if better then best, bestLoad, bestMax, bestIdle = id, load, max, idle end
  end
end
if best == nil then return false end
-- Skip heads whose conversation ended or expired meanwhile.
while true do
  local head = redis.call('ZRANGE', KEYS[1], 0, 0)
  if #head == 0 then return false end
  local conv = head[1]
  redis.call('ZREM', KEYS[1], conv)
  local ckey = base .. 'c:' .. conv
  if redis.call('HGET', ckey, 'state') == 'queued' then
    local akey = base .. 'a:' .. best
    redis.call('HINCRBY', akey, 'load', 1)
    redis.call('HSET', akey, 'idle_since', ARGV[2])
    redis.call('SADD', akey .. ':chats', conv)
    redis.call('HSET', ckey, 'state', 'active', 'agent', best)
    redis.call('HSETNX', ckey, 'first_assigned_at', ARGV[2])
    redis.call('ZADD', base .. 'activity', ARGV[2], conv)
    return {conv, best, redis.call('HGET', ckey, 'locale') or 'en'}
  end
end
