-- needs: transition
-- A library: what happens to a running job whose lease lapsed (its worker died: killed, out of
-- memory, cut off). A cancel requested meanwhile is carried out; a job that ran past its time
-- limit, or whose worker died on every one of its attempts, fails with the reason; any other
-- goes back to the queue and is marked for a new queue message. Returns the job's new state.
local function settle(job, stats, now, max_attempts, time_limit, ttl)
  local f = redis.call('HMGET', job, 'cancel', 'attempts', 'started_at', 'alive_at')
  local attempts = tonumber(f[2]) or 0
  local ran = (tonumber(f[4]) or tonumber(f[3]) or now) - (tonumber(f[3]) or now)
  if f[1] == '1' then
    transition(job, stats, 'running', 'cancelled', now, {}, ttl)
    return 'cancelled'
  end
  if ran >= tonumber(time_limit) then
    transition(job, stats, 'running', 'failed', now, {'error', 'time limit of ' .. time_limit .. ' s exceeded'}, ttl)
    return 'failed'
  end
  if attempts >= tonumber(max_attempts) then
    local reason = 'the worker died ' .. attempts .. ' times while running this job (out of memory or killed)'
    transition(job, stats, 'running', 'failed', now, {'error', reason}, ttl)
    return 'failed'
  end
  local id = redis.call('HGET', job, 'id')
  redis.call('HSET', job, 'state', 'queued', 'steps_done', 0, 'requeued_because', 'its worker stopped renewing its lease')
  redis.call('SREM', key.state('running'), id)
  redis.call('SADD', key.state('queued'), id)
  redis.call('SADD', key.resend(), id)
  redis.call('HINCRBY', stats, 'requeued', 1)
  return 'queued'
end
