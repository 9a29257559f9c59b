-- needs: settle
-- KEYS: job, lease, stats. ARGV: now, max attempts, time limit s, job ttl. A running job whose
-- lease has lapsed is settled (see settle); returns its new state, or false.
if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('EXISTS', KEYS[2]) == 1 then return false end
return settle(KEYS[1], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
