-- Make a new conversation the visitor's, unless the visitor already has an open one.
-- KEYS[1] visitor hash, KEYS[2] new conversation hash
-- ARGV[1] key base, ARGV[2] new conversation id, ARGV[3] visitor TTL (ms), ARGV[4..] field/value pairs
local cur = redis.call('HGET', KEYS[1], 'conv')
if cur then
  local st = redis.call('HGET', ARGV[1] .. 'c:' .. cur, 'state')
  if st and st ~= 'closed' then return cur end
end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('HSET', KEYS[1], 'conv', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return false
