-- needs: start envelope
-- The oldest queue message, when it is a job's (its task id is the job's id), taken and its job
-- claimed as start claims one: {id, start's reply}; {} when the queue is empty or its oldest
-- message is another kind (a batch of sweep points, or one not ours), which stays where it was.
-- KEYS: queue, stats. ARGV: as start's after its keys, then the job task's name.
local raw = redis.call('RPOP', KEYS[1])
if not raw then return {} end
local task, id = envelope_task(raw)
if task ~= ARGV[8] or type(id) ~= 'string' or not string.match(id, '^%x+$') or redis.call('EXISTS', key.job(id)) == 0 then
  redis.call('RPUSH', KEYS[1], raw)
  return {}
end
return {id, start(key.job(id), key.lease(id), KEYS[2], key.request(id), unpack(ARGV, 1, 7))}
