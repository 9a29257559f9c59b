-- needs: stored
-- A sweep, its points (jobs naming the sweep, kept out of the owner's job list and job limit) and
-- their queue messages, all or nothing.
-- KEYS: sweep, sweep request, sweep points, owner sweeps, owner sweep points, queued set, stats, queue.
-- ARGV: sweep id, owner, now, max points in flight, points, mode, sweep request json, messages, the
-- owner's storage quota, what its summary table needs (JSON), then per point its job id, steps
-- total, request json and live flag ('1' or '0'), then the queue messages (one per point, or one
-- for a group of points that run batched).
-- Returns {1}, {0} (too many points in flight) or {-1, bytes stored} (over the quota).
local n = tonumber(ARGV[5])
local messages = tonumber(ARGV[8])
if tonumber(redis.call('GET', KEYS[5]) or '0') + n > tonumber(ARGV[4]) then return {0} end
local bytes = string.len(ARGV[7])
for i = 0, n - 1 do bytes = bytes + string.len(ARGV[11 + 4 * i + 2]) end
local stored = stored_total(ARGV[2], ARGV[3])
if stored + bytes > tonumber(ARGV[9]) then return {-1, stored} end
keep(ARGV[2], 'sweep:' .. ARGV[1], string.len(ARGV[7]), '+inf')
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'owner', ARGV[2], 'created_at', ARGV[3], 'points', n, 'mode', ARGV[6],
           'ended', 0, 'succeeded', 0, 'failed', 0, 'cancelled', 0, 'axes', ARGV[10])
redis.call('SET', KEYS[2], ARGV[7])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
redis.call('INCRBY', KEYS[5], n)
for i = 0, n - 1 do
  local at = 11 + 4 * i
  local id = ARGV[at]
  local job = key.job(id)
  keep(ARGV[2], 'job:' .. id, string.len(ARGV[at + 2]), '+inf')
  redis.call('HSET', job, 'id', id, 'owner', ARGV[2], 'state', 'queued', 'created_at', ARGV[3], 'steps_done', 0,
             'steps_total', ARGV[at + 1], 'attempts', 0, 'sweep', ARGV[1], 'point', i)
  if ARGV[at + 3] == '1' then redis.call('HSET', job, 'live', 1) end
  redis.call('SET', key.request(id), ARGV[at + 2])
  redis.call('RPUSH', KEYS[3], id)
  redis.call('SADD', KEYS[6], id)
end
for i = 0, messages - 1 do redis.call('LPUSH', KEYS[8], ARGV[11 + 4 * n + i]) end
redis.call('HINCRBY', KEYS[7], 'entered:queued', n)
return {1}
