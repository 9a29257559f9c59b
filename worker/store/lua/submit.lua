-- needs: stored
-- A new job and its queue message, all or nothing.
-- KEYS: job, request, owner jobs, owner active, queued set, stats, submitted, queue.
-- ARGV: id, owner, now, steps_total, request json, max in flight, submitted json ('' if the same),
--       queue message ('' for none), live ('1': its event stream carries live spikes), name ('' for
--       none), the owner's storage quota in bytes, warnings (JSON, '' for none).
-- Returns {1}, {0} (too many in flight) or {-1, bytes stored} (over the quota).
if redis.call('SCARD', KEYS[4]) >= tonumber(ARGV[6]) then return {0} end
local bytes = string.len(ARGV[5]) + string.len(ARGV[7])
local stored = stored_total(ARGV[2], ARGV[3])
if stored + bytes > tonumber(ARGV[11]) then return {-1, stored} end
keep(ARGV[2], 'job:' .. ARGV[1], bytes, '+inf')
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'owner', ARGV[2], 'state', 'queued', 'created_at', ARGV[3],
           'steps_done', 0, 'steps_total', ARGV[4], 'attempts', 0)
redis.call('SET', KEYS[2], ARGV[5])
if ARGV[7] ~= '' then redis.call('SET', KEYS[7], ARGV[7]) end
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
redis.call('HINCRBY', KEYS[6], 'entered:queued', 1)
if ARGV[8] ~= '' then redis.call('LPUSH', KEYS[8], ARGV[8]) end
if ARGV[9] == '1' then redis.call('HSET', KEYS[1], 'live', 1) end
if ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'name', ARGV[10]) end
if ARGV[12] ~= '' then redis.call('HSET', KEYS[1], 'warnings', ARGV[12]) end
return {1}
