-- Give queue heads to the best eligible agents, atomically: nobody exceeds a limit even with many
-- nodes assigning at once. Best: lowest load/limit, then idle longest, then id. Up to ARGV[5]
-- assignments per call, from one read of the department's online agents (a drain of thousands of
-- queued chats reads each agent once per batch, not once per chat).
-- KEYS[1] queue sorted set, KEYS[2] the department's set of agents whose status is online
-- ARGV[1] key base, ARGV[2] now (ms), ARGV[3] grace (ms), ARGV[4] department, ARGV[5] batch size
-- Returns {conv, agent, locale, conv, agent, locale, ...}.
if redis.call('ZCARD', KEYS[1]) == 0 then return {} end
local base, now, grace, batch = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[5])
local cands = {}
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
  local max, load = tonumber(h.max or '0'), tonumber(h.load or '0')
  if h.status == 'online' and load < max and present + grace > now then
    cands[#cands + 1] = {id = id, load = load, max = max, idle = tonumber(h.idle_since or '0')}
  end
end
local out = {}
while #out < batch * 3 and #cands > 0 do
  local bi, best = nil, nil
  for i, c in ipairs(cands) do
    if c.load < c.max then
      local better = best == nil
      if not better then
        local a, b = c.load * best.max, best.load * c.max
        better = a < b or (a == b and (c.idle < best.idle or (c.idle == best.idle and c.id < best.id)))
      end
      if better then bi, best = i, c end
    end
  end
  if best == nil then break end
  local head = redis.call('ZRANGE', KEYS[1], 0, 0)
  if #head == 0 then break end
  local conv = head[1]
  redis.call('ZREM', KEYS[1], conv)
  local ckey = base .. 'c:' .. conv
  -- Skip heads whose conversation ended or expired meanwhile.
  if redis.call('HGET', ckey, 'state') == 'queued' then
    local akey = base .. 'a:' .. best.id
    redis.call('HINCRBY', akey, 'load', 1)
    redis.call('HSET', akey, 'idle_since', ARGV[2])
    redis.call('SADD', akey .. ':chats', conv)
    redis.call('HSET', ckey, 'state', 'active', 'agent', best.id)
    redis.call('HSETNX', ckey, 'first_assigned_at', ARGV[2])
    redis.call('ZADD', base .. 'activity', ARGV[2], conv)
    best.load = best.load + 1
    best.idle = now
    out[#out + 1] = conv
    out[#out + 1] = best.id
    out[#out + 1] = redis.call('HGET', ckey, 'locale') or 'en'
  end
end
return out
