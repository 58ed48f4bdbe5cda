-- Store one event and publish it: the whole relay of a message in one round trip.
-- KEYS[1] conversation hash, KEYS[2] its log stream, KEYS[3] its client-id hash,
-- KEYS[4] the site's activity sorted set (active chats by last visitor activity),
-- KEYS[5] the site's pending set (chats whose owner has not acted yet),
-- KEYS[6..] with a rate: the counters of this window a new message counts in
-- ARGV[1] client id ('' for none), ARGV[2] event body JSON (an object without "seq"),
-- ARGV[3] channel, ARGV[4] site, ARGV[5] conversation id, ARGV[6] time of a visitor message ('' otherwise),
-- ARGV[7] guard: '' none, 'v:<visitor>' the visitor's open chat, 'a:<agent>' the agent's active chat,
-- ARGV[8] 'PUBLISH', or 'SPUBLISH' on a cluster (the channel is in this site's slot),
-- ARGV[9] the rate's limit ('' none), ARGV[10] its window in ms,
-- ARGV[11] '1' when the event is the owner's reply to the visitor (it ends the first-reply clock).
-- Returns {seq, duplicate}; {0, 0} unknown conversation; {0, -1} the guard failed, {0, -2}
-- over the rate (nothing stored either way). A repeated client id is not counted again.
if ARGV[1] ~= '' then
  local seen = redis.call('HGET', KEYS[3], ARGV[1])
  if seen then return {tonumber(seen), 1} end
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0} end
local guard = ARGV[7] or ''
local pending = false
if guard ~= '' then
  local c = redis.call('HMGET', KEYS[1], 'state', 'visitor', 'agent', 'offered', 'pending_since')
  local who, id = string.sub(guard, 1, 1), string.sub(guard, 3)
  if who == 'v' and (c[1] == 'closed' or c[2] ~= id) then return {0, -1} end
  -- An offer not accepted yet is not the agent's to write in.
  if who == 'a' and (c[1] ~= 'active' or c[3] ~= id or c[4] == '1') then return {0, -1} end
  pending = who == 'a' and c[5] and ARGV[11] == '1'
end
local limit = tonumber(ARGV[9] or '')
if limit then
  local over = false
  for i = 6, #KEYS do
    local n = redis.call('INCR', KEYS[i])
    redis.call('PEXPIRE', KEYS[i], ARGV[10])
    if n > limit then over = true end
  end
  if over then return {0, -2} end
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local visitor = redis.call('HGET', KEYS[1], 'visitor') or ''
local event = '{"seq":' .. seq .. ',' .. string.sub(ARGV[2], 2)
redis.call('XADD', KEYS[2], '0-' .. seq, 'e', event)
if ARGV[1] ~= '' then redis.call('HSET', KEYS[3], ARGV[1], seq) end
if ARGV[6] ~= '' then redis.call('ZADD', KEYS[4], 'XX', ARGV[6], ARGV[5]) end
if pending then
  redis.call('HDEL', KEYS[1], 'pending_since')
  redis.call('ZREM', KEYS[5], ARGV[5])
end
redis.call(ARGV[8], ARGV[3],
  '{"t":"event","site":' .. cjson.encode(ARGV[4]) .. ',"conv":' .. cjson.encode(ARGV[5]) ..
  ',"visitor":' .. cjson.encode(visitor) .. ',"event":' .. event .. '}')
return {seq, 0}
