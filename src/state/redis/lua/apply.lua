-- Apply a routing decision (`routing::decide`) only if what it read still holds: each chat still
-- queued in this department, and each agent still online, present, with the load and limit the
-- decision read. Otherwise nothing is written and the caller reads a new snapshot (a conflict
-- with another node). Nobody exceeds a limit even with many nodes assigning at once.
-- KEYS[1] queue sorted set
-- ARGV[1] key base, ARGV[2] now (ms), ARGV[3] grace (ms), ARGV[4] '1' when assignments are
-- offers (accepted or declined), ARGV[5..] conv, agent, load, max, ...
-- Returns {conv, agent, locale, ...}, or false on a conflict.
local base, now, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
-- Each conversation's locale, read with its state; each agent checked once, and its place in
-- the index kept once, however many chats the decision gives it.
local locales, checked = {}, {}
for i = 5, #ARGV, 4 do
  local conv, agent = ARGV[i], ARGV[i + 1]
  local c = redis.call('HMGET', base .. 'c:' .. conv, 'state', 'locale')
  if c[1] ~= 'queued' or not redis.call('ZSCORE', KEYS[1], conv) then return false end
  locales[i] = c[2] or 'en'
  local read = checked[agent]
  if read then
    -- Every assignment to one agent carries what the decision read of it, before any.
    if read[1] ~= ARGV[i + 2] or read[2] ~= ARGV[i + 3] then return false end
  else
    local flat = redis.call('HGETALL', base .. 'a:' .. agent)
    local h, present = {}, 0
    for j = 1, #flat, 2 do
      h[flat[j]] = flat[j + 1]
      if string.sub(flat[j], 1, 5) == 'node:' and tonumber(flat[j + 1]) > present then
        present = tonumber(flat[j + 1])
      end
    end
    if h.status ~= 'online' or (h.load or '0') ~= ARGV[i + 2] or (h.max or '0') ~= ARGV[i + 3]
      or present + grace <= now then return false end
    checked[agent] = {ARGV[i + 2], ARGV[i + 3]}
  end
end
local out = {}
for i = 5, #ARGV, 4 do
  local conv, agent = ARGV[i], ARGV[i + 1]
  local ckey, akey = base .. 'c:' .. conv, base .. 'a:' .. agent
  redis.call('ZREM', KEYS[1], conv)
  redis.call('HINCRBY', akey, 'load', 1)
  redis.call('HSET', akey, 'idle_since', ARGV[2])
  redis.call('SADD', akey .. ':chats', conv)
  redis.call('HSET', akey .. ':since', conv, ARGV[2])
  -- An offer is not an assignment until it is accepted (`accept.lua`).
  if ARGV[4] == '1' then
    redis.call('HSET', ckey, 'state', 'active', 'agent', agent, 'pending_since', ARGV[2],
      'offered', '1')
  else
    redis.call('HSET', ckey, 'state', 'active', 'agent', agent, 'pending_since', ARGV[2])
    redis.call('HSETNX', ckey, 'first_assigned_at', ARGV[2])
    redis.call('HDEL', ckey, 'offered')
  end
  redis.call('ZADD', base .. 'pending', ARGV[2], conv)
  redis.call('ZADD', base .. 'activity', ARGV[2], conv)
  out[#out + 1] = conv
  out[#out + 1] = agent
  out[#out + 1] = locales[i]
end
for agent in pairs(checked) do sb_index(base, agent) end
return out
