-- Take an active conversation from its owner and put it at the head of a queue.
-- KEYS[1] conversation hash, KEYS[2] target queue, KEYS[3] the site's last arrival number
-- ARGV[1] key base, ARGV[2] conversation id, ARGV[3] expected owner, ARGV[4] department, ARGV[5] now,
-- ARGV[6] the priority unit (`routing::queue_score`), ARGV[7] the conversation's new needs
-- (JSON; '' keeps them)
local st = redis.call('HMGET', KEYS[1], 'state', 'agent', 'priority')
if st[1] ~= 'active' or st[2] ~= ARGV[3] then return 0 end
local base, conv = ARGV[1], ARGV[2]
if redis.call('SREM', base .. 'a:' .. ARGV[3] .. ':chats', conv) == 1 then
  redis.call('HINCRBY', base .. 'a:' .. ARGV[3], 'load', -1)
  sb_index(base, ARGV[3])
end
redis.call('HDEL', base .. 'a:' .. ARGV[3] .. ':since', conv)
local arrival = math.max(tonumber(ARGV[5]) * 1000, tonumber(redis.call('GET', KEYS[3]) or '0') + 1)
redis.call('SET', KEYS[3], string.format('%.0f', arrival))
local score = arrival - math.min(tonumber(st[3] or '0'), 9) * tonumber(ARGV[6])
local head = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #head > 0 then score = math.min(score, tonumber(head[2])) - 1 end
redis.call('ZADD', KEYS[2], string.format('%.0f', score), conv)
redis.call('ZREM', base .. 'activity', conv)
redis.call('ZREM', base .. 'pending', conv)
redis.call('HDEL', KEYS[1], 'pending_since', 'offered')
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'needs', ARGV[7]) end
redis.call('HSET', KEYS[1], 'state', 'queued', 'agent', '', 'department', ARGV[4], 'queued_since', ARGV[5])
return 1
