-- needs: purged
-- KEYS: sweep, sweep request, sweep points. ARGV: sweep id. A finished sweep and every point of
-- it, purged: 'purged', 'unknown' or 'not final'.
local f = redis.call('HMGET', KEYS[1], 'owner', 'points', 'ended')
if not f[1] then return 'unknown' end
if tonumber(f[3]) < tonumber(f[2]) then return 'not final' end
for _, id in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do purge_job(id) end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', key.owner_sweeps(f[1]), ARGV[1])
forget(f[1], 'sweep:' .. ARGV[1])
return 'purged'
