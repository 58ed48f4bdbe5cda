-- Set an agent's status or limit, with the department sets and the routing index. Nothing for
-- an agent not registered (no partial record); a limit is held to the agent's cap, in this
-- step, so a cap lowered by another node meanwhile still holds (as the embedded store does).
-- KEYS[1] agent hash
-- ARGV[1] key base, ARGV[2] agent id, ARGV[3] field (`status` or `max`), ARGV[4] value
local cap = redis.call('HGET', KEYS[1], 'cap')
if not cap then return 0 end
local value = ARGV[4]
if ARGV[3] == 'max' then value = tostring(math.min(tonumber(value), tonumber(cap))) end
redis.call('HSET', KEYS[1], ARGV[3], value)
if ARGV[3] == 'status' then
  local depts = redis.call('HGET', KEYS[1], 'depts')
  for _, d in ipairs(depts and cjson.decode(depts) or {}) do
    local set = ARGV[1] .. 'd:' .. d .. ':online'
    if value == 'online' then redis.call('SADD', set, ARGV[2]) else redis.call('SREM', set, ARGV[2]) end
  end
end
sb_index(ARGV[1], ARGV[2])
return 1
