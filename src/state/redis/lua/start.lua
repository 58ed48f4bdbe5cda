-- An agent opens a conversation with a browsing visitor, atomically within the agent's limit.
-- Returns 1 done, 0 the visitor already has an open conversation, -1 the agent cannot take it.
-- KEYS[1] visitor hash, KEYS[2] new conversation hash, KEYS[3] agent hash
-- ARGV[1] key base, ARGV[2] conversation id, ARGV[3] agent id, ARGV[4] now, ARGV[5] grace (ms),
-- ARGV[6] visitor TTL (ms), ARGV[7..] conversation field/value pairs
local cur = redis.call('HGET', KEYS[1], 'conv')
if cur then
  local st = redis.call('HGET', ARGV[1] .. 'c:' .. cur, 'state')
  if st and st ~= 'closed' then return 0 end
end
local flat = redis.call('HGETALL', KEYS[3])
local h, present = {}, 0
for i = 1, #flat, 2 do
  h[flat[i]] = flat[i + 1]
  if string.sub(flat[i], 1, 5) == 'node:' and tonumber(flat[i + 1]) > present then present = tonumber(flat[i + 1]) end
end
if h.status == 'offline' or tonumber(h.load or '0') >= tonumber(h.max or '0')
  or present + tonumber(ARGV[5]) <= tonumber(ARGV[4]) then return -1 end
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('HSET', KEYS[2], 'state', 'active', 'agent', ARGV[3], 'first_assigned_at', ARGV[4])
redis.call('HSET', KEYS[1], 'conv', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('HINCRBY', KEYS[3], 'load', 1)
redis.call('HSET', KEYS[3], 'idle_since', ARGV[4])
redis.call('SADD', KEYS[3] .. ':chats', ARGV[2])
redis.call('HSET', KEYS[3] .. ':since', ARGV[2], ARGV[4])
redis.call('ZADD', ARGV[1] .. 'activity', ARGV[4], ARGV[2])
sb_index(ARGV[1], ARGV[3])
return 1
