-- A node vouches for an agent's connection until a time; stale fields of dead nodes are pruned.
-- KEYS[1] agent hash; ARGV[1] node field, ARGV[2] until (ms), ARGV[3] prune before (ms),
-- ARGV[4] key base, ARGV[5] agent id (a returning agent goes back into the routing index)
-- Nothing for an agent not registered (as the embedded store): no partial record.
if redis.call('HEXISTS', KEYS[1], 'cap') == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if string.sub(flat[i], 1, 5) == 'node:' and flat[i] ~= ARGV[1] and tonumber(flat[i + 1]) < tonumber(ARGV[3]) then
    redis.call('HDEL', KEYS[1], flat[i])
  end
end
sb_index(ARGV[4], ARGV[5])
return 1
