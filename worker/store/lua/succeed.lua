-- needs: transition
-- running -> succeeded with its results, statistics, expiry and stored bytes, and the lease
-- released, all in one round trip; nothing is stored if the job is no longer running.
-- KEYS: job, request, lease, stats, json result, npz result.
-- ARGV: now, lease token, result ttl, job ttl, json, npz, neuron steps, wall s, summary, then the
-- duration bucket the run falls in (if any).
local total = redis.call('HGET', KEYS[1], 'steps_total')
local fields = {'steps_done', total or 0, 'wall_s', ARGV[8], 'summary', ARGV[9]}
local moved = transition(KEYS[1], KEYS[4], 'running', 'succeeded', ARGV[1], fields, ARGV[4])
if moved[1] == 1 then
  if ARGV[5] ~= '' then redis.call('SET', KEYS[5], ARGV[5], 'EX', ARGV[3]) end  -- '': JSON made on request
  redis.call('SET', KEYS[6], ARGV[6], 'EX', ARGV[3])
  local owner = redis.call('HGET', KEYS[1], 'owner')
  keep(owner, 'result:' .. redis.call('HGET', KEYS[1], 'id'), string.len(ARGV[5]) + string.len(ARGV[6]), ARGV[1] + ARGV[3])
  redis.call('HINCRBY', KEYS[4], 'neuron_steps', ARGV[7])
  redis.call('HINCRBYFLOAT', KEYS[4], 'duration_sum', ARGV[8])
  redis.call('HINCRBY', KEYS[4], 'duration_count', 1)
  if ARGV[10] then redis.call('HINCRBY', KEYS[4], 'duration_in:' .. ARGV[10], 1) end
end
if redis.call('GET', KEYS[3]) == ARGV[2] then redis.call('DEL', KEYS[3]) end
return moved
