-- needs: transition
-- KEYS: job, stats. ARGV: now, job ttl. Raises the cancel flag; a queued job is cancelled at once,
-- a running one by its worker at its next chunk. Returns the state after.
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'cancel', '1')
transition(KEYS[1], KEYS[2], 'queued', 'cancelled', ARGV[1], {}, ARGV[2])
return redis.call('HGET', KEYS[1], 'state')
