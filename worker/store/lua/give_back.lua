-- needs: transition
-- KEYS: job, lease, stats. ARGV: now, lease token, job ttl. A running job whose lease this worker
-- holds goes back to the queue, marked for a new queue message (a batch of sweep points that ran
-- out of time gives its points back to run alone); returns whether it did.
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
local moved = transition(KEYS[1], KEYS[3], 'running', 'queued', ARGV[1], {'steps_done', 0}, ARGV[3])
if moved[1] ~= 1 then return 0 end
redis.call('HINCRBY', KEYS[1], 'attempts', -1)  -- handed back, not died: the next start is not a retry
redis.call('DEL', KEYS[2])
redis.call('SADD', key.resend(), redis.call('HGET', KEYS[1], 'id'))
return 1
