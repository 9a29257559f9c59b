-- needs: settle
-- A library: start(job, lease, stats, request; now, device, lease token, lease ms, max attempts,
-- time limit s, job ttl): queued -> running, or running -> running when the lease has lapsed
-- (after settling the dead attempt, which may end the job instead); takes the lease. Returns
-- {1, request json} when started, {0, state} when refused, {2, state} when a cancel was requested
-- (the caller cancels), {} for an unknown job.
local function start(job, lease, stats, request, now, device, token, lease_ms, max_attempts, time_limit, ttl)
  local state = redis.call('HGET', job, 'state')
  if not state then return {} end
  if state ~= 'queued' and state ~= 'running' then return {0, state} end
  if state == 'running' then
    if redis.call('EXISTS', lease) == 1 then return {0, state} end
    state = settle(job, stats, now, max_attempts, time_limit, ttl)
    if state ~= 'queued' then return {0, state} end
  end
  if redis.call('HGET', job, 'cancel') == '1' then return {2, state} end
  local id = redis.call('HGET', job, 'id')
  redis.call('SET', lease, token, 'PX', lease_ms)
  redis.call('HSET', job, 'state', 'running', 'started_at', now, 'alive_at', now, 'device', device, 'steps_done', 0)
  redis.call('HINCRBY', job, 'attempts', 1)
  redis.call('SREM', key.state('queued'), id)
  redis.call('SREM', key.resend(), id)
  redis.call('SADD', key.state('running'), id)
  redis.call('HINCRBY', stats, 'entered:running', 1)
  redis.call('PUBLISH', key.events(id), cjson.encode({status = 'running', steps_done = 0,
    steps_total = tonumber(redis.call('HGET', job, 'steps_total'))}))
  return {1, redis.call('GET', request) or false}
end
