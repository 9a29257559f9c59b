-- needs: stored
-- Every job and sweep (with its points, and the bytes they keep) of the old owner becomes the new
-- owner's; returns how many jobs.
-- KEYS: old owner's jobs, new owner's jobs, old owner's active set, new owner's active set, old
-- owner's sweeps, new owner's sweeps, old owner's unfinished sweep points, new owner's, old
-- owner's stored bytes, their expiry. ARGV: new owner.
local kept = redis.call('HGETALL', KEYS[9])
for i = 1, #kept, 2 do
  if kept[i] ~= 'total' then
    keep(ARGV[1], kept[i], tonumber(kept[i + 1]), redis.call('ZSCORE', KEYS[10], kept[i]) or '+inf')
  end
end
redis.call('DEL', KEYS[9], KEYS[10])
local ids = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #ids, 2 do
  local job = key.job(ids[i])
  if redis.call('EXISTS', job) == 1 then redis.call('HSET', job, 'owner', ARGV[1]) end
  redis.call('ZADD', KEYS[2], ids[i + 1], ids[i])
  if redis.call('SMOVE', KEYS[3], KEYS[4], ids[i]) == 0 then redis.call('SREM', KEYS[3], ids[i]) end
end
local sweeps = redis.call('ZRANGE', KEYS[5], 0, -1, 'WITHSCORES')
for i = 1, #sweeps, 2 do
  local record = key.sweep(sweeps[i])
  if redis.call('EXISTS', record) == 1 then redis.call('HSET', record, 'owner', ARGV[1]) end
  for _, id in ipairs(redis.call('LRANGE', key.sweep_points(sweeps[i]), 0, -1)) do
    local job = key.job(id)
    if redis.call('EXISTS', job) == 1 then redis.call('HSET', job, 'owner', ARGV[1]) end
  end
  redis.call('ZADD', KEYS[6], sweeps[i + 1], sweeps[i])
end
local unfinished = tonumber(redis.call('GET', KEYS[7]) or '0')
if unfinished ~= 0 then redis.call('INCRBY', KEYS[8], unfinished) end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[5], KEYS[7])
return #ids / 2
