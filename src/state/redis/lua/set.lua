-- Set an agent's status or limit, with the department sets and the routing index.
-- KEYS[1] agent hash
-- ARGV[1] key base, ARGV[2] agent id, ARGV[3] field (`status` or `max`), ARGV[4] value
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
if ARGV[3] == 'status' then
  local depts = redis.call('HGET', KEYS[1], 'depts')
  for _, d in ipairs(depts and cjson.decode(depts) or {}) do
    local set = ARGV[1] .. 'd:' .. d .. ':online'
    if ARGV[4] == 'online' then redis.call('SADD', set, ARGV[2]) else redis.call('SREM', set, ARGV[2]) end
  end
end
sb_index(ARGV[1], ARGV[2])
return 1
