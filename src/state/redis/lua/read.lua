-- A read receipt: raises the reader's mark to ARGV[2], capped at the last event; never lowers it.
-- KEYS[1] conversation hash; ARGV[1] field ('vr' visitor, 'ar' agent); ARGV[2] seq
-- Returns the new mark, or 0 when it did not advance or the conversation is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local seq = math.min(tonumber(ARGV[2]), tonumber(redis.call('HGET', KEYS[1], 'seq') or '0'))
if seq <= tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], seq)
return seq
