-- Prepended to every script that changes an agent's status, limit, load, departments or
-- presence: keeps `d:<dept>:avail`, the department's index of agents who can take a chat, so an
-- assignment reads the best candidate instead of every online agent.
-- Members: agents whose status is online and whose load is below their limit. Score: the load
-- ratio in 1/10000 (two different ratios of limits up to 100 never share a step), then the last
-- assignment in tenths of a second (idle longest first); equal scores order by id. Presence is
-- checked when a candidate is picked (it lapses with time, which no script sees happen).
local function sb_index(base, id)
  local f = redis.call('HMGET', base .. 'a:' .. id, 'status', 'load', 'max', 'idle_since', 'depts')
  if not f[5] then return end
  local load, max = tonumber(f[2] or '0'), tonumber(f[3] or '0')
  local ok = f[1] == 'online' and load < max
  local score = 0
  if ok then
    score = math.floor(load * 10000 / max) * 1e11 + math.floor(tonumber(f[4] or '0') / 100)
  end
  for _, d in ipairs(cjson.decode(f[5])) do
    local key = base .. 'd:' .. d .. ':avail'
    if ok then
      redis.call('ZADD', key, string.format('%.0f', score), id)
    else
      redis.call('ZREM', key, id)
    end
  end
end
