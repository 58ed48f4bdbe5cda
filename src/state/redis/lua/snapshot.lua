-- A department as `routing::decide` reads it: the head of its queue and the agents who may take
-- a chat. Mechanics only, no choice: heads whose conversation ended or expired leave the queue;
-- index members found offline, full or past the grace leave the index until their status, load
-- or presence next changes (`sb_index`). A waiting chat's preferred agent is read too, even if
-- full or away, when they are in the department.
-- Only as much of the index is read as the decision can use (`routing::reach`): the waiting
-- chats are grouped by the skills they require now (optional ones until widened), and the
-- index is read best first until each group has `reach(k)` agents with all of its skills, where
-- k is one more than the assignments that can come before the group's last chat, plus the
-- agents that chat already tried. Agents with none of any group's skills are left out.
-- KEYS[1] queue sorted set, KEYS[2] the department's index of available agents
-- ARGV[1] key base, ARGV[2] now (ms), ARGV[3] grace (ms), ARGV[4] department, ARGV[5] window,
-- ARGV[6] batch, ARGV[7] widening (ms, -1 never)
-- Returns {{conv, queued_at, needs JSON, ...}, {agent, status, load, max, idle_since, present,
-- skills JSON, ...}, how many queue entries were read}; both lists empty when the queue is.
local base, now, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local batch, widen = tonumber(ARGV[6]), tonumber(ARGV[7])
local q, a, seen, prefer, preferred = {}, {}, {}, {}, {}
-- Index members found unable to take a chat and removed while reading it: the reading's
-- offset moves back by as many.
local dropped = 0
local groups, order = {}, {}
-- A queue's chats mostly require the same few sets of skills: each distinct `needs` (with
-- whether it has widened) is decoded and grouped once. The Lua is the cost here: a snapshot of
-- a thousand chats and a thousand agents took 35 ms before these caches.
local decoded, grouped = {}, {}
-- Nobody can take a chat (a preferred agent with room is in the index too): nothing to decide.
if redis.call('ZCARD', KEYS[2]) == 0 then return {q, a, 0} end
local function group(j, raw, needs, since)
  local wide = needs ~= nil and widen >= 0 and now - since >= widen
  local seen_as = (raw or '') .. (wide and '\1' or '\0')
  local g = grouped[seen_as]
  if not g then
    local set, list = {}, {}
    if needs then
      for _, s in ipairs(needs.skills or {}) do set[s] = true end
      if not wide then
        for _, s in ipairs(needs.optional or {}) do set[s] = true end
      end
    end
    for s in pairs(set) do list[#list + 1] = s end
    table.sort(list)
    local key = table.concat(list, '\0')
    g = groups[key]
    if not g then
      g = {skills = list, need = 0, have = 0}
      groups[key] = g
      order[#order + 1] = g
    end
    grouped[seen_as] = g
  end
  local tried = needs and #(needs.tried or {}) or 0
  local need = math.min(j, batch - 1) + 1 + tried
  if need > g.need then g.need = need end
end
local head = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[5]) - 1)
for _, conv in ipairs(head) do
  local f = redis.call('HMGET', base .. 'c:' .. conv, 'state', 'queued_at', 'needs')
  if f[1] == 'queued' then
    local needs = nil
    if f[3] then
      needs = decoded[f[3]]
      if needs == nil then
        needs = cjson.decode(f[3])
        decoded[f[3]] = needs
      end
      if type(needs.prefer) == 'string' and not preferred[needs.prefer] then
        prefer[#prefer + 1] = needs.prefer
        preferred[needs.prefer] = true
      end
    end
    group(#q / 3, f[3], needs, tonumber(f[2] or ARGV[2]))
    q[#q + 1] = conv
    q[#q + 1] = f[2] or ARGV[2]
    q[#q + 1] = f[3] or ''
  else
    redis.call('ZREM', KEYS[1], conv)
  end
end
if #q == 0 then return {q, a, #head} end
-- Reads an agent; `indexed`: a member of the index, which leaves it when it cannot take a chat.
-- Returns what the decision reads of it, when it is an agent the decision may use.
local function read(id, indexed)
  if seen[id] then return nil end
  seen[id] = true
  local flat = redis.call('HGETALL', base .. 'a:' .. id)
  -- Fields picked as they come rather than into a table: this runs for every agent read.
  local status, load, max, idle, skills, depts
  local present, present_s = 0, '0'
  for i = 1, #flat, 2 do
    local k = flat[i]
    if k == 'status' then status = flat[i + 1]
    elseif k == 'load' then load = flat[i + 1]
    elseif k == 'max' then max = flat[i + 1]
    elseif k == 'idle_since' then idle = flat[i + 1]
    elseif k == 'skills' then skills = flat[i + 1]
    elseif k == 'depts' then depts = flat[i + 1]
    elseif string.byte(k, 1) == 110 and string.find(k, 'node:', 1, true) == 1 then
      local t = tonumber(flat[i + 1])
      if t > present then present, present_s = t, flat[i + 1] end
    end
  end
  if not status then return nil end
  load, max = load or '0', max or '0'
  local gone = present + grace <= now
  if indexed then
    if gone or status ~= 'online' or tonumber(load) >= tonumber(max) then
      redis.call('ZREM', KEYS[2], id)
      dropped = dropped + 1
      return nil
    end
  else
    if gone then return nil end
    local member = false
    for _, d in ipairs(cjson.decode(depts or '[]')) do
      if d == ARGV[4] then member = true end
    end
    if not member then return nil end
  end
  return {id, status, load, max, idle or '0', present_s, skills or '[]'}
end
local function keep(row)
  for _, v in ipairs(row) do a[#a + 1] = v end
end
-- The groups by their first skill (those with none fit anyone): an agent is checked against
-- the groups of its own few skills, not every group.
local by_first, anyone = {}, {}
for _, g in ipairs(order) do
  local first = g.skills[1]
  if first then
    by_first[first] = by_first[first] or {}
    table.insert(by_first[first], g)
  else
    anyone[#anyone + 1] = g
  end
end
-- The groups whose skills an agent's skills (JSON) include; skill names need no escaping.
local function fitting(json)
  local fit, has = {}, {}
  for _, g in ipairs(anyone) do fit[#fit + 1] = g end
  for s in string.gmatch(json, '"([^"]*)"') do has[s] = true end
  for s in pairs(has) do
    for _, g in ipairs(by_first[s] or {}) do
      local ok = true
      for i = 2, #g.skills do
        if not has[g.skills[i]] then ok = false break end
      end
      if ok then fit[#fit + 1] = g end
    end
  end
  return fit
end
local wanting = #order
local probe = #order <= 4
for _, g in ipairs(order) do
  if #g.skills == 0 then probe = false end
end
local from, step = 0, 64
while wanting > 0 do
  local ids = redis.call('ZRANGE', KEYS[2], from, from + step - 1)
  if #ids == 0 then break end
  dropped = 0
  for _, id in ipairs(ids) do
    -- With few groups that all require skills, their skills first: most agents of a large
    -- team lack them. With many groups nearly every agent fits one: one read each.
    local fit, row = nil, nil
    if probe then
      fit = fitting(redis.call('HGET', base .. 'a:' .. id, 'skills') or '[]')
      if #fit > 0 or preferred[id] then row = read(id, true) end
    else
      row = read(id, true)
      if row then fit = fitting(row[7]) end
    end
    if row then
      if #fit > 0 or preferred[id] then keep(row) end
      for _, g in ipairs(fit) do
        g.have = g.have + 1
        if g.have == g.need then wanting = wanting - 1 end
      end
    end
    if wanting == 0 then break end
  end
  from = from + #ids - dropped
end
for _, id in ipairs(prefer) do
  local row = read(id, false)
  if row then keep(row) end
end
return {q, a, #head}
