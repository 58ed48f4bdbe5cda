-- Move an active conversation between two agents within the target's limit.
-- Returns 1 done, 0 not the owner; the target is unavailable: -1 the owner itself, -2 not
-- online, -3 at their limit, -4 not connected (past the grace).
-- KEYS[1] conversation hash, KEYS[2] source agent hash, KEYS[3] target agent hash
-- ARGV[1] conversation id, ARGV[2] source id, ARGV[3] target id, ARGV[4] now, ARGV[5] grace (ms),
-- ARGV[6] key base
local st = redis.call('HMGET', KEYS[1], 'state', 'agent')
if st[1] ~= 'active' or st[2] ~= ARGV[2] then return 0 end
if ARGV[2] == ARGV[3] then return -1 end
local flat = redis.call('HGETALL', KEYS[3])
local h, present = {}, 0
for i = 1, #flat, 2 do
  h[flat[i]] = flat[i + 1]
  if string.sub(flat[i], 1, 5) == 'node:' and tonumber(flat[i + 1]) > present then present = tonumber(flat[i + 1]) end
end
-- An agent not registered is nobody to connect to (as the embedded store says).
if not h.cap then return -4 end
if h.status ~= 'online' then return -2 end
if tonumber(h.load or '0') >= tonumber(h.max or '0') then return -3 end
if present + tonumber(ARGV[5]) <= tonumber(ARGV[4]) then return -4 end
if redis.call('SREM', KEYS[2] .. ':chats', ARGV[1]) == 1 then redis.call('HINCRBY', KEYS[2], 'load', -1) end
redis.call('HDEL', KEYS[2] .. ':since', ARGV[1])
redis.call('HINCRBY', KEYS[3], 'load', 1)
redis.call('HSET', KEYS[3], 'idle_since', ARGV[4])
redis.call('SADD', KEYS[3] .. ':chats', ARGV[1])
redis.call('HSET', KEYS[3] .. ':since', ARGV[1], ARGV[4])
redis.call('HSET', KEYS[1], 'agent', ARGV[3])
redis.call('HDEL', KEYS[1], 'pending_since', 'offered')
redis.call('ZREM', ARGV[6] .. 'pending', ARGV[1])
sb_index(ARGV[6], ARGV[2])
sb_index(ARGV[6], ARGV[3])
return 1
