-- needs: stored
-- A library: the one definition of a state change. Moves the job at key `job` to `to` if its
-- state is in `allowed` (comma separated), setting `fields` (a flat name/value list); returns
-- {1, to} on success, {0, current_state} when refused, {} for an unknown job. A job that reaches
-- a final state expires after `ttl` seconds, with its requests; the last point of a sweep to end
-- ends the sweep.
local function transition(job, stats, allowed, to, now, fields, ttl)
  local state = redis.call('HGET', job, 'state')
  if not state then return {} end
  if not string.find(',' .. allowed .. ',', ',' .. state .. ',', 1, true) then return {0, state} end
  local id = redis.call('HGET', job, 'id')
  local owner = redis.call('HGET', job, 'owner')
  redis.call('HSET', job, 'state', to)
  for i = 1, #fields, 2 do redis.call('HSET', job, fields[i], fields[i + 1]) end
  if to == 'running' then redis.call('HINCRBY', job, 'attempts', 1) end
  redis.call('SREM', key.state(state), id)
  if to == 'queued' or to == 'running' then
    redis.call('SADD', key.state(to), id)
  else
    redis.call('HSET', job, 'finished_at', now)
    redis.call('SREM', key.owner_active(owner), id)
    redis.call('SREM', key.resend(), id)
    redis.call('EXPIRE', key.live(id), LIVE_TTL_S)
    if ttl then
      for _, name in ipairs({job, key.request(id), key.submitted(id)}) do redis.call('EXPIRE', name, ttl) end
      expire_at(owner, 'job:' .. id, now + ttl)
    end
    local sweep = redis.call('HGET', job, 'sweep')
    if sweep then
      local record = key.sweep(sweep)
      local ended = redis.call('HINCRBY', record, 'ended', 1)
      redis.call('HINCRBY', record, to, 1)
      redis.call('DECR', key.owner_sweep_points(owner))
      local points = tonumber(redis.call('HGET', record, 'points') or '0')
      if ended >= points then
        redis.call('HSET', record, 'finished_at', now)
        if ttl then
          for _, name in ipairs({record, key.sweep_request(sweep), key.sweep_points(sweep)}) do redis.call('EXPIRE', name, ttl) end
          expire_at(owner, 'sweep:' .. sweep, now + ttl)
        end
      end
      redis.call('PUBLISH', key.events(sweep), cjson.encode({sweep = sweep, ended = ended, points = points}))
    end
  end
  if state ~= to then redis.call('HINCRBY', stats, 'entered:' .. to, 1) end
  local snapshot = redis.call('HMGET', job, 'state', 'steps_done', 'steps_total')
  redis.call('PUBLISH', key.events(id),
    cjson.encode({status = snapshot[1], steps_done = tonumber(snapshot[2]), steps_total = tonumber(snapshot[3])}))
  return {1, to}
end
