-- A department as `routing::decide` reads it: the head of its queue and the agents who may take
-- a chat. Mechanics only, no choice: heads whose conversation ended or expired leave the queue;
-- index members found offline, full or past the grace leave the index until their status, load
-- or presence next changes (`sb_index`). A waiting chat's preferred agent is read too, even if
-- full or away, when they are in the department.
-- When no chat read needs a skill, only the best `ARGV[6]` members of the index are read: a
-- decision of B assignments without skills only ever picks among the B best (`routing::reach`).
-- KEYS[1] queue sorted set, KEYS[2] the department's index of available agents
-- ARGV[1] key base, ARGV[2] now (ms), ARGV[3] grace (ms), ARGV[4] department, ARGV[5] window,
-- ARGV[6] how many of the index's best to read when no chat needs a skill
-- Returns {{conv, queued_at, needs JSON, ...}, {agent, status, load, max, idle_since, present,
-- skills JSON, ...}}; both empty when the queue is.
local base, now, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local q, a, seen, prefer = {}, {}, {}, {}
local skills = false
-- Nobody can take a chat (a preferred agent with room is in the index too): nothing to decide.
if redis.call('ZCARD', KEYS[2]) == 0 then return {q, a} end
for _, conv in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[5]) - 1)) do
  local f = redis.call('HMGET', base .. 'c:' .. conv, 'state', 'queued_at', 'needs')
  if f[1] == 'queued' then
    q[#q + 1] = conv
    q[#q + 1] = f[2] or ARGV[2]
    q[#q + 1] = f[3] or ''
    if f[3] then
      if string.find(f[3], '"skills"', 1, true) or string.find(f[3], '"optional"', 1, true)
        or string.find(f[3], '"tried"', 1, true) then
        skills = true
      end
      local p = cjson.decode(f[3]).prefer
      if type(p) == 'string' then prefer[#prefer + 1] = p end
    end
  else
    redis.call('ZREM', KEYS[1], conv)
  end
end
if #q == 0 then return {q, a} end
local function read(id, indexed)
  if seen[id] then return end
  seen[id] = true
  local flat = redis.call('HGETALL', base .. 'a:' .. id)
  local h, present, present_s = {}, 0, '0'
  for i = 1, #flat, 2 do
    local k, v = flat[i], flat[i + 1]
    h[k] = v
    if string.sub(k, 1, 5) == 'node:' and tonumber(v) > present then
      present, present_s = tonumber(v), v
    end
  end
  if not h.status then return end
  local gone = present + grace <= now
  if indexed then
    if gone or h.status ~= 'online' or tonumber(h.load or '0') >= tonumber(h.max or '0') then
      redis.call('ZREM', KEYS[2], id)
      return
    end
  else
    if gone then return end
    local member = false
    for _, d in ipairs(cjson.decode(h.depts or '[]')) do
      if d == ARGV[4] then member = true end
    end
    if not member then return end
  end
  a[#a + 1] = id
  a[#a + 1] = h.status
  a[#a + 1] = h.load or '0'
  a[#a + 1] = h.max or '0'
  a[#a + 1] = h.idle_since or '0'
  a[#a + 1] = present_s
  a[#a + 1] = h.skills or '[]'
end
local last = -1
if not skills then last = tonumber(ARGV[6]) - 1 end
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, last)) do read(id, true) end
for _, id in ipairs(prefer) do read(id, false) end
return {q, a}
