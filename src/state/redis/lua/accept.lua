-- The owner accepts a chat offered to them: it now waits for their first reply (pending since
-- the acceptance; the owner's reply clears it in `append.lua`).
-- KEYS[1] conversation hash, KEYS[2] the site's pending set
-- ARGV[1] conversation id, ARGV[2] the owner, ARGV[3] now (its first assignment, if none yet)
-- Returns 1, or 0 when it is not (or no longer) an offer to them.
local c = redis.call('HMGET', KEYS[1], 'state', 'agent', 'offered')
if c[1] ~= 'active' or c[2] ~= ARGV[2] or c[3] ~= '1' then return 0 end
redis.call('HDEL', KEYS[1], 'offered')
redis.call('HSET', KEYS[1], 'pending_since', ARGV[3])
redis.call('HSETNX', KEYS[1], 'first_assigned_at', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
