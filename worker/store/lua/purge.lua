-- needs: purged
-- KEYS: job. ARGV: job id. A finished job that is not a sweep's point, purged: 'purged',
-- 'unknown', 'not final' or 'in a sweep'.
if redis.call('HEXISTS', KEYS[1], 'sweep') == 1 then return 'in a sweep' end
return purge_job(ARGV[1])
