-- needs: transition
-- KEYS: sweep, sweep points, stats. ARGV: now, job ttl. Flags the sweep and every point: queued
-- points are cancelled at once, running ones by their workers at their next chunk. Returns false
-- if unknown.
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'cancel', '1')
for _, id in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  local job = key.job(id)
  if redis.call('EXISTS', job) == 1 then
    redis.call('HSET', job, 'cancel', '1')
    transition(job, KEYS[3], 'queued', 'cancelled', ARGV[1], {}, ARGV[2])
  end
end
return true
