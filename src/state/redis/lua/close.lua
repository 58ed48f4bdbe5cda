-- Close an open conversation: free its agent's slot or its queue place; expire its keys later.
-- Returns the conversation hash as it was, or false when it was closed or unknown.
-- KEYS[1] conversation hash, KEYS[2] its log, KEYS[3] its client ids
-- ARGV[1] key base, ARGV[2] conversation id, ARGV[3] reason, ARGV[4] now, ARGV[5] retention (ms)
local flat = redis.call('HGETALL', KEYS[1])
if #flat == 0 then return false end
local h = {}
for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
if h.state == 'closed' then return false end
local base, conv = ARGV[1], ARGV[2]
if h.department then redis.call('ZREM', base .. 'q:' .. h.department, conv) end
if h.state == 'active' and h.agent and h.agent ~= '' then
  if redis.call('SREM', base .. 'a:' .. h.agent .. ':chats', conv) == 1 then
    redis.call('HINCRBY', base .. 'a:' .. h.agent, 'load', -1)
    sb_index(base, h.agent)
  end
  redis.call('HDEL', base .. 'a:' .. h.agent .. ':since', conv)
end
redis.call('HSET', KEYS[1], 'state', 'closed', 'closed_at', ARGV[4], 'close_reason', ARGV[3])
redis.call('ZREM', base .. 'activity', conv)
redis.call('ZREM', base .. 'pending', conv)
redis.call('HDEL', KEYS[1], 'pending_since', 'offered')
redis.call('SADD', base .. 'unticketed', conv)
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
return flat
