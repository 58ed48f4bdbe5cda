-- Give queue heads to the best eligible agents, atomically: nobody exceeds a limit even with many
-- nodes assigning at once. Best: lowest load/limit, then idle longest, then id: the head of the
-- department's index (`sb_index`), so each assignment reads one or a few agents, not all of them.
-- A candidate found not present (past the grace) or stale leaves the index until its presence,
-- status or load next changes. Up to ARGV[5] assignments per call.
-- KEYS[1] queue sorted set, KEYS[2] the department's index of available agents
-- ARGV[1] key base, ARGV[2] now (ms), ARGV[3] grace (ms), ARGV[4] department, ARGV[5] batch size
-- Returns {conv, agent, locale, conv, agent, locale, ...}.
if redis.call('ZCARD', KEYS[1]) == 0 then return {} end
local base, now, grace, batch = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[5])
local out = {}
while #out < batch * 3 do
  local head = redis.call('ZRANGE', KEYS[1], 0, 0)
  if #head == 0 then break end
  local best = nil
  while best == nil do
    local top = redis.call('ZRANGE', KEYS[2], 0, 0)
    if #top == 0 then break end
    local flat = redis.call('HGETALL', base .. 'a:' .. top[1])
    local h, present = {}, 0
    for i = 1, #flat, 2 do
      local k, v = flat[i], flat[i + 1]
      h[k] = v
      if string.sub(k, 1, 5) == 'node:' then
        local t = tonumber(v)
        if t > present then present = t end
      end
    end
    if h.status == 'online' and tonumber(h.load or '0') < tonumber(h.max or '0')
      and present + grace > now then
      best = top[1]
    else
      redis.call('ZREM', KEYS[2], top[1])
    end
  end
  if best == nil then break end
  local conv = head[1]
  redis.call('ZREM', KEYS[1], conv)
  local ckey = base .. 'c:' .. conv
  -- Skip heads whose conversation ended or expired meanwhile.
  if redis.call('HGET', ckey, 'state') == 'queued' then
    local akey = base .. 'a:' .. best
    redis.call('HINCRBY', akey, 'load', 1)
    redis.call('HSET', akey, 'idle_since', ARGV[2])
    redis.call('SADD', akey .. ':chats', conv)
    redis.call('HSET', ckey, 'state', 'active', 'agent', best)
    redis.call('HSETNX', ckey, 'first_assigned_at', ARGV[2])
    redis.call('ZADD', base .. 'activity', ARGV[2], conv)
    sb_index(base, best)
    out[#out + 1] = conv
    out[#out + 1] = best
    out[#out + 1] = redis.call('HGET', ckey, 'locale') or 'en'
  end
end
return out
