-- Records that a trigger fired for a visitor, unless an earlier record still holds.
-- KEYS[1] the visitor's hash; ARGV: field, now, until (when the rule may fire again).
-- Returns 1 when this call made the record, 0 otherwise (also for an unknown visitor).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held and tonumber(held) > tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
