-- KEYS: lease, job. ARGV: token, lease ms, now. Renews only a lease this worker still holds, and
-- notes when the job was last seen alive (how long a run lasted, if its worker then dies).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('HSET', KEYS[2], 'alive_at', ARGV[3])
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
