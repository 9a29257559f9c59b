-- needs: stored
-- A library: deleting what a finished job keeps: its record, requests, results and live stream,
-- its entry in its owner's list and its stored bytes. Returns 'purged', 'unknown' or 'not final'.
local function purge_job(id)
  local job = key.job(id)
  local f = redis.call('HMGET', job, 'state', 'owner')
  if not f[1] then return 'unknown' end
  if f[1] ~= 'succeeded' and f[1] ~= 'failed' and f[1] ~= 'cancelled' then return 'not final' end
  redis.call('DEL', job, key.request(id), key.submitted(id), key.result(id, 'json'), key.result(id, 'npz'), key.live(id))
  redis.call('ZREM', key.owner_jobs(f[2]), id)
  forget(f[2], 'job:' .. id)
  forget(f[2], 'result:' .. id)
  return 'purged'
end
