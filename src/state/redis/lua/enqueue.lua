-- Put an open conversation in a department queue in `routing::queue_score` order, or at the head.
-- KEYS[1] conversation hash, KEYS[2] queue sorted set, KEYS[3] the site's last arrival number
-- ARGV[1] conversation id, ARGV[2] department, ARGV[3] now (ms), ARGV[4] '1' for the head,
-- ARGV[5] key base (to leave another department's queue; same slot: the site's hash tag),
-- ARGV[6] the priority unit, ARGV[7] (optional) only if queued in this department now (a move)
local st = redis.call('HGET', KEYS[1], 'state')
if not st or st == 'closed' then return 0 end
local old = redis.call('HGET', KEYS[1], 'department')
if ARGV[7] and (st ~= 'queued' or old ~= ARGV[7]) then return 0 end
if st == 'queued' and old and old ~= ARGV[2] then
  redis.call('ZREM', ARGV[5] .. 'q:' .. old, ARGV[1])
end
local prio = math.min(tonumber(redis.call('HGET', KEYS[1], 'priority') or '0'), 9)
local arrival = math.max(tonumber(ARGV[3]) * 1000, tonumber(redis.call('GET', KEYS[3]) or '0') + 1)
redis.call('SET', KEYS[3], string.format('%.0f', arrival))
local score = arrival - prio * tonumber(ARGV[6])
if ARGV[4] == '1' then
  local head = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if #head > 0 then score = math.min(score, tonumber(head[2])) - 1 end
end
redis.call('ZADD', KEYS[2], string.format('%.0f', score), ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'queued', 'department', ARGV[2], 'queued_since', ARGV[3])
redis.call('HSETNX', KEYS[1], 'queued_at', ARGV[3])
return 1
