"""The service's own job records, in Redis.

Celery only carries a job id; everything a client sees lives here: state, owner, timestamps,
progress, error, device, the request and the encoded results. Celery's own task states are never
consulted (its PENDING means "unknown", not "queued").

State changes are compare-and-set Lua scripts, so a cancel racing a start, or a redelivered task
racing its first run, can never leave a job in a state it should not be in:

    queued -> running -> succeeded | failed | cancelled
    queued -> cancelled | failed
    running -> running | queued   (only once the job's lease has lapsed: its worker died)

A running job holds a lease that its worker renews every few seconds. A lease that lapses means
the worker is gone (killed, out of memory, cut off from Redis); ``requeue_orphans`` then puts the
job back in the queue. A second delivery of a job whose lease is alive is refused, so a job never
runs twice at the same time.
"""

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as aioredis

if TYPE_CHECKING:
    from worker.settings import Settings

PREFIX = "ss"
STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATES = ("succeeded", "failed", "cancelled")
ACTIVE_STATES = ("queued", "running")
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 1800.0)


def duration_bucket(wall_s: float) -> list[float]:
    """The smallest bucket bound a job's duration falls under (none past the last). The stats
    count jobs per bucket, ``duration_in:<bound>``, and the metrics add them up: one counter per
    job instead of one per bucket it is under."""
    return [bound for bound in DURATION_BUCKETS if wall_s <= bound][:1]


def job_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def request_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:request"


def result_key(job_id: str, fmt: str) -> str:
    return f"{PREFIX}:job:{job_id}:result:{fmt}"


def events_channel(job_id: str) -> str:
    return f"{PREFIX}:events:{job_id}"


def live_key(job_id: str) -> str:
    """A running job's live chunks (a Redis stream), kept LIVE_TTL_S after the job ends."""
    return f"{PREFIX}:job:{job_id}:live"


LIVE_TTL_S = 60  # enough for a stream's reader to drain; the result holds every spike anyway
LIVE_IDLE_TTL_S = 3600  # a stream whose job never ended (a lost worker) does not stay forever
LIVE_MAX_CHUNKS = 64  # the stream keeps the newest chunks only: a late reader gets the result instead


def owner_jobs_key(owner: str) -> str:
    return f"{PREFIX}:owner:{owner}:jobs"


def owner_active_key(owner: str) -> str:
    return f"{PREFIX}:owner:{owner}:active"


def owner_sweeps_key(owner: str) -> str:
    return f"{PREFIX}:owner:{owner}:sweeps"


def owner_stored_key(owner: str) -> str:
    """What the owner keeps in the store (a hash): bytes per record (``job:<id>`` its request,
    ``result:<id>`` its results, ``sweep:<id>`` a sweep as submitted) and their ``total``; the
    records' expiry times are in ``owner_stored_key(owner) + ':expiry'`` (a sorted set, +inf while
    a record does not expire), and the ``STORED_FUNCTIONS`` take what expired off the total."""
    return f"{PREFIX}:owner:{owner}:stored"


def owner_sweep_points_key(owner: str) -> str:
    """How many points of the owner's sweeps are unfinished (a counter)."""
    return f"{PREFIX}:owner:{owner}:sweep_points"


def sweep_key(sweep_id: str) -> str:
    """A sweep's record: owner, points, how many ended and how (counted by its points' final
    transitions), cancel flag. The points are ordinary jobs whose records name the sweep."""
    return f"{PREFIX}:sweep:{sweep_id}"


def sweep_request_key(sweep_id: str) -> str:
    """The sweep as submitted."""
    return f"{sweep_key(sweep_id)}:request"


def sweep_points_key(sweep_id: str) -> str:
    """The sweep's points' job ids, in point order."""
    return f"{sweep_key(sweep_id)}:points"


def lease_key(job_id: str) -> str:
    return f"{PREFIX}:lease:{job_id}"


def state_set_key(state: str) -> str:
    return f"{PREFIX}:state:{state}"


STATS_KEY = f"{PREFIX}:stats"
# kombu's Redis transport: messages a worker took and has not acknowledged, and when it took them
UNACKED_KEY, UNACKED_INDEX_KEY = "unacked", "unacked_index"
QUEUE_KEY = "celery"  # the Redis list behind the Celery queue that workers consume
RESEND_KEY = f"{PREFIX}:resend"  # requeued jobs whose queue message is still to be sent


def heartbeat_key(worker: str) -> str:
    """A live worker's heartbeat (``*`` matches them all); it expires when the worker stops beating."""
    return f"{PREFIX}:workers:{worker}"


def submitted_key(job_id: str) -> str:
    """The request as submitted, kept only when it differs from what runs (a NIR network)."""
    return f"{PREFIX}:job:{job_id}:submitted"


# The owner's stored bytes (owner_stored_key): `stored_total` takes the records that expired off
# the total and returns it; `keep` records (or re-records) one record's bytes and expiry ('+inf':
# none yet); `expire_at` sets the expiry of a record kept; `forget` takes a record off.
STORED_FUNCTIONS = """
local function stored_keys(owner)
  local hash = 'ss:owner:' .. owner .. ':stored'
  return hash, hash .. ':expiry'
end
local function drop(hash, record)
  local bytes = tonumber(redis.call('HGET', hash, record) or '0')
  if bytes > 0 then redis.call('HINCRBY', hash, 'total', 0 - bytes) end
  redis.call('HDEL', hash, record)
end
local function stored_total(owner, now)
  local hash, expiry = stored_keys(owner)
  local gone = redis.call('ZRANGEBYSCORE', expiry, '-inf', now)
  for _, record in ipairs(gone) do drop(hash, record) end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', expiry, '-inf', now) end
  return tonumber(redis.call('HGET', hash, 'total') or '0')
end
local function forget(owner, record)
  local hash, expiry = stored_keys(owner)
  drop(hash, record)
  redis.call('ZREM', expiry, record)
end
local function keep(owner, record, bytes, expires_at)
  forget(owner, record)
  local hash, expiry = stored_keys(owner)
  redis.call('HINCRBY', hash, 'total', bytes)
  redis.call('HSET', hash, record, bytes)
  redis.call('ZADD', expiry, expires_at, record)
end
local function expire_at(owner, record, expires_at)
  local _, expiry = stored_keys(owner)
  redis.call('ZADD', expiry, 'XX', expires_at, record)
end
"""

# KEYS: job, request, owner jobs, owner active, queued set, stats, submitted, queue
# ARGV: id, owner, now, steps_total, request json, max in flight, submitted json ('' if the same),
#       queue message ('' for none), live ('1': its event stream carries live spikes), name ('' for none),
#       the owner's storage quota in bytes, warnings (JSON, '' for none). Returns {1}, {0} (too many in
#       flight) or {-1, bytes stored} (over quota).
_SUBMIT = (
    STORED_FUNCTIONS
    + """
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
"""
)

# The one definition of a state change, shared by the scripts below. Moves the job at key `job` to
# `to` if its state is in `allowed` (comma separated), setting `fields` (a flat name/value list);
# returns {1, to} on success, {0, current_state} when refused, {} for an unknown job. A job that
# reaches a final state expires after `ttl` seconds, with its requests.
_TRANSITION_FUNCTION = (
    STORED_FUNCTIONS
    + """
local function transition(job, stats, allowed, to, now, fields, ttl)
  local state = redis.call('HGET', job, 'state')
  if not state then return {} end
  if not string.find(',' .. allowed .. ',', ',' .. state .. ',', 1, true) then return {0, state} end
  local id = redis.call('HGET', job, 'id')
  local owner = redis.call('HGET', job, 'owner')
  redis.call('HSET', job, 'state', to)
  for i = 1, #fields, 2 do redis.call('HSET', job, fields[i], fields[i + 1]) end
  if to == 'running' then redis.call('HINCRBY', job, 'attempts', 1) end
  redis.call('SREM', 'ss:state:' .. state, id)
  if to == 'queued' or to == 'running' then
    redis.call('SADD', 'ss:state:' .. to, id)
  else
    redis.call('HSET', job, 'finished_at', now)
    redis.call('SREM', 'ss:owner:' .. owner .. ':active', id)
    redis.call('SREM', 'ss:resend', id)
    redis.call('EXPIRE', job .. ':live', LIVE_TTL_S)
    if ttl then
      for _, key in ipairs({job, job .. ':request', job .. ':submitted'}) do redis.call('EXPIRE', key, ttl) end
      expire_at(owner, 'job:' .. id, now + ttl)
    end
    local sweep = redis.call('HGET', job, 'sweep')
    if sweep then
      local record = 'ss:sweep:' .. sweep
      local ended = redis.call('HINCRBY', record, 'ended', 1)
      redis.call('HINCRBY', record, to, 1)
      redis.call('DECR', 'ss:owner:' .. owner .. ':sweep_points')
      local points = tonumber(redis.call('HGET', record, 'points') or '0')
      if ended >= points then
        redis.call('HSET', record, 'finished_at', now)
        if ttl then
          for _, key in ipairs({record, record .. ':request', record .. ':points'}) do redis.call('EXPIRE', key, ttl) end
          expire_at(owner, 'sweep:' .. sweep, now + ttl)
        end
      end
      redis.call('PUBLISH', 'ss:events:' .. sweep, cjson.encode({sweep = sweep, ended = ended, points = points}))
    end
  end
  if state ~= to then redis.call('HINCRBY', stats, 'entered:' .. to, 1) end
  local snapshot = redis.call('HMGET', job, 'state', 'steps_done', 'steps_total')
  redis.call('PUBLISH', 'ss:events:' .. id,
    cjson.encode({status = snapshot[1], steps_done = tonumber(snapshot[2]), steps_total = tonumber(snapshot[3])}))
  return {1, to}
end
""".replace("LIVE_TTL_S", str(LIVE_TTL_S))
)

# What happens to a running job whose lease lapsed (its worker died: killed, out of memory, cut
# off). A cancel requested meanwhile is carried out; a job that ran past its time limit, or whose
# worker died on every one of its attempts, fails with the reason; any other goes back to the queue
# and is marked for a new queue message. Returns the job's new state.
_SETTLE_FUNCTION = (
    _TRANSITION_FUNCTION
    + """
local function settle(job, stats, now, max_attempts, time_limit, ttl)
  local f = redis.call('HMGET', job, 'cancel', 'attempts', 'started_at', 'alive_at')
  local attempts = tonumber(f[2]) or 0
  local ran = (tonumber(f[4]) or tonumber(f[3]) or now) - (tonumber(f[3]) or now)
  if f[1] == '1' then
    transition(job, stats, 'running', 'cancelled', now, {}, ttl)
    return 'cancelled'
  end
  if ran >= tonumber(time_limit) then
    transition(job, stats, 'running', 'failed', now, {'error', 'time limit of ' .. time_limit .. ' s exceeded'}, ttl)
    return 'failed'
  end
  if attempts >= tonumber(max_attempts) then
    local reason = 'the worker died ' .. attempts .. ' times while running this job (out of memory or killed)'
    transition(job, stats, 'running', 'failed', now, {'error', reason}, ttl)
    return 'failed'
  end
  local id = redis.call('HGET', job, 'id')
  redis.call('HSET', job, 'state', 'queued', 'steps_done', 0, 'requeued_because', 'its worker stopped renewing its lease')
  redis.call('SREM', 'ss:state:running', id)
  redis.call('SADD', 'ss:state:queued', id)
  redis.call('SADD', 'ss:resend', id)
  redis.call('HINCRBY', stats, 'requeued', 1)
  return 'queued'
end
"""
)

# KEYS: job, stats. ARGV: allowed from-states, to-state, now, job ttl ('' for none), then field/value pairs.
_TRANSITION = (
    _TRANSITION_FUNCTION
    + """
local ttl = ARGV[4] ~= '' and ARGV[4] or nil
return transition(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], {unpack(ARGV, 5)}, ttl)
"""
)

# KEYS: job, stats. ARGV: now, job ttl. Raises the cancel flag; a queued job is cancelled at once,
# a running one by its worker at its next chunk. Returns the state after.
_CANCEL = (
    _TRANSITION_FUNCTION
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'cancel', '1')
transition(KEYS[1], KEYS[2], 'queued', 'cancelled', ARGV[1], {}, ARGV[2])
return redis.call('HGET', KEYS[1], 'state')
"""
)

# KEYS: sweep, sweep request, sweep points, owner sweeps, owner sweep points, queued set, stats, queue.
# ARGV: sweep id, owner, now, max points in flight, points, mode, sweep request json, messages, the
# owner's storage quota, what its summary table needs (JSON), then per point its job id, steps
# total, request json and live flag ('1' or '0'), then the queue messages (one per point, or one
# for a group of points that run batched). The
# sweep, its points (jobs naming the sweep, kept out of the owner's job list and job limit) and
# their messages, all or nothing. Returns {1}, {0} (too many points in flight) or {-1, bytes stored}.
_SUBMIT_SWEEP = (
    STORED_FUNCTIONS
    + """
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
  local job = 'ss:job:' .. id
  keep(ARGV[2], 'job:' .. id, string.len(ARGV[at + 2]), '+inf')
  redis.call('HSET', job, 'id', id, 'owner', ARGV[2], 'state', 'queued', 'created_at', ARGV[3], 'steps_done', 0,
             'steps_total', ARGV[at + 1], 'attempts', 0, 'sweep', ARGV[1], 'point', i)
  if ARGV[at + 3] == '1' then redis.call('HSET', job, 'live', 1) end
  redis.call('SET', job .. ':request', ARGV[at + 2])
  redis.call('RPUSH', KEYS[3], id)
  redis.call('SADD', KEYS[6], id)
end
for i = 0, messages - 1 do redis.call('LPUSH', KEYS[8], ARGV[11 + 4 * n + i]) end
redis.call('HINCRBY', KEYS[7], 'entered:queued', n)
return {1}
"""
)

# KEYS: sweep, sweep points, stats. ARGV: now, job ttl. Flags the sweep and every point: queued points
# are cancelled at once, running ones by their workers at their next chunk. Returns false if unknown.
_CANCEL_SWEEP = (
    _TRANSITION_FUNCTION
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'cancel', '1')
for _, id in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  local job = 'ss:job:' .. id
  if redis.call('EXISTS', job) == 1 then
    redis.call('HSET', job, 'cancel', '1')
    transition(job, KEYS[3], 'queued', 'cancelled', ARGV[1], {}, ARGV[2])
  end
end
return true
"""
)

# KEYS: old owner's jobs, new owner's jobs, old owner's active set, new owner's active set, old
# owner's sweeps, new owner's sweeps, old owner's unfinished sweep points, new owner's, old owner's
# stored bytes. ARGV: new owner. Every job and sweep (with its points, and the bytes they keep) of
# the old owner becomes the new owner's; returns how many jobs.
_REASSIGN = (
    STORED_FUNCTIONS
    + """
local kept = redis.call('HGETALL', KEYS[9])
for i = 1, #kept, 2 do
  if kept[i] ~= 'total' then
    keep(ARGV[1], kept[i], tonumber(kept[i + 1]), redis.call('ZSCORE', KEYS[9] .. ':expiry', kept[i]) or '+inf')
  end
end
redis.call('DEL', KEYS[9], KEYS[9] .. ':expiry')
local ids = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #ids, 2 do
  local job = 'ss:job:' .. ids[i]
  if redis.call('EXISTS', job) == 1 then redis.call('HSET', job, 'owner', ARGV[1]) end
  redis.call('ZADD', KEYS[2], ids[i + 1], ids[i])
  if redis.call('SMOVE', KEYS[3], KEYS[4], ids[i]) == 0 then redis.call('SREM', KEYS[3], ids[i]) end
end
local sweeps = redis.call('ZRANGE', KEYS[5], 0, -1, 'WITHSCORES')
for i = 1, #sweeps, 2 do
  local record = 'ss:sweep:' .. sweeps[i]
  if redis.call('EXISTS', record) == 1 then redis.call('HSET', record, 'owner', ARGV[1]) end
  for _, id in ipairs(redis.call('LRANGE', record .. ':points', 0, -1)) do
    local job = 'ss:job:' .. id
    if redis.call('EXISTS', job) == 1 then redis.call('HSET', job, 'owner', ARGV[1]) end
  end
  redis.call('ZADD', KEYS[6], sweeps[i + 1], sweeps[i])
end
local unfinished = tonumber(redis.call('GET', KEYS[7]) or '0')
if unfinished ~= 0 then redis.call('INCRBY', KEYS[8], unfinished) end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[5], KEYS[7])
return #ids / 2
"""
)

# KEYS: job, request, lease, stats, json result, npz result.
# ARGV: now, lease token, result ttl, job ttl, json, npz, neuron steps, wall s, summary, then the duration
# buckets the run falls in. running -> succeeded with its results, statistics and expiry, and the
# lease released, all in one round trip; nothing is stored if the job is no longer running.
_SUCCEED = (
    _TRANSITION_FUNCTION
    + """
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
"""
)


# start(job, lease, stats, request keys; now, device, lease token, lease ms, max attempts, time limit
# s, job ttl): queued -> running, or running -> running when the lease has lapsed (after settling the
# dead attempt, which may end the job instead); takes the lease. Returns {1, request json} when
# started, {0, state} when refused, {2, state} when a cancel was requested (the caller cancels), {}
# for an unknown job. _START calls it with its KEYS and ARGV in that order.
_START_FUNCTION = (
    _SETTLE_FUNCTION
    + """
local function start(job, lease, stats, request, now, device, token, lease_ms, max_attempts, time_limit, ttl)
  local state = redis.call('HGET', job, 'state')
  if not state then return {} end
  if state ~= 'queued' and state ~= 'running' then return {0, state} end
  if state == 'running' then
    if redis.call('EXISTS', lease) == 1 then return {0, state} end
    state = settle(job, stats, now, max_attempts, time_limit, ttl)
    if state ~= 'queued' then return {0, state} end
  end
  if redis.call('HGET', job, 'cancel') == '1' then return {2, state} end
  local id = redis.call('HGET', job, 'id')
  redis.call('SET', lease, token, 'PX', lease_ms)
  redis.call('HSET', job, 'state', 'running', 'started_at', now, 'alive_at', now, 'device', device, 'steps_done', 0)
  redis.call('HINCRBY', job, 'attempts', 1)
  redis.call('SREM', 'ss:state:queued', id)
  redis.call('SREM', 'ss:resend', id)
  redis.call('SADD', 'ss:state:running', id)
  redis.call('HINCRBY', stats, 'entered:running', 1)
  redis.call('PUBLISH', 'ss:events:' .. id, cjson.encode({status = 'running', steps_done = 0,
    steps_total = tonumber(redis.call('HGET', job, 'steps_total'))}))
  return {1, redis.call('GET', request) or false}
end
"""
)
_START = _START_FUNCTION + "return start(KEYS[1], KEYS[2], KEYS[3], KEYS[4], unpack(ARGV))\n"

# KEYS: queue, stats. ARGV: as start's after its keys, then the job task's name. The oldest queue
# message, when it is a job's (its task id is the job's id), taken and its job claimed as start
# claims one: {id, start's reply}; {} when the queue is empty or its oldest message is another
# kind (a batch of sweep points, or one not ours), which stays where it was for a worker to take.
_TAKE_NEXT = (
    _START_FUNCTION
    + """
local raw = redis.call('RPOP', KEYS[1])
if not raw then return {} end
local ok, message = pcall(cjson.decode, raw)
local id = ok and type(message) == 'table' and type(message.headers) == 'table'
  and message.headers.task == ARGV[8] and message.headers.id
if type(id) ~= 'string' or not string.match(id, '^%x+$') or redis.call('EXISTS', 'ss:job:' .. id) == 0 then
  redis.call('RPUSH', KEYS[1], raw)
  return {}
end
local job = 'ss:job:' .. id
return {id, start(job, 'ss:lease:' .. id, KEYS[2], job .. ':request', unpack(ARGV, 1, 7))}
"""
)

# KEYS: lease, job. ARGV: token, lease ms, now. Renews only a lease this worker still holds, and
# notes when the job was last seen alive (how long a run lasted, if its worker then dies).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('HSET', KEYS[2], 'alive_at', ARGV[3])
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: unacked, unacked index, queue. ARGV: delivery tag, the entry as read, the message ('': drop
# it). Moves a taken message back to the end of the queue that is read next, or drops a stale one,
# if its entry is still as read.
_RESTORE = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[3] ~= '' then redis.call('RPUSH', KEYS[3], ARGV[3]) end
return 1
"""

# KEYS: job, lease, stats. ARGV: now, lease token, job ttl. A running job whose lease this worker
# holds goes back to the queue, marked for a new queue message (a batch of sweep points that ran
# out of time gives its points back to run alone); returns whether it did.
_GIVE_BACK = (
    _TRANSITION_FUNCTION
    + """
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
local moved = transition(KEYS[1], KEYS[3], 'running', 'queued', ARGV[1], {'steps_done', 0}, ARGV[3])
if moved[1] ~= 1 then return 0 end
redis.call('HINCRBY', KEYS[1], 'attempts', -1)  -- handed back, not died: the next start is not a retry
redis.call('DEL', KEYS[2])
redis.call('SADD', 'ss:resend', redis.call('HGET', KEYS[1], 'id'))
return 1
"""
)

# KEYS: job, lease, stats. ARGV: now, max attempts, time limit s, job ttl.
# A running job whose lease has lapsed is settled (see settle); returns its new state, or false.
_REQUEUE = (
    _SETTLE_FUNCTION
    + """
if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('EXISTS', KEYS[2]) == 1 then return false end
return settle(KEYS[1], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
"""
)


# KEYS: the owner's stored bytes. ARGV: now. Their total, the expired records taken off.
_STORED = (
    STORED_FUNCTIONS
    + """
return stored_total(string.match(KEYS[1], '^ss:owner:(.*):stored$'), ARGV[1])
"""
)

# Deleting what a finished job keeps: its record, requests, results and live stream, its entry in
# its owner's list and its stored bytes. `purge_job` returns 'purged', 'unknown' or 'not final'.
_PURGE_FUNCTION = (
    STORED_FUNCTIONS
    + """
local function purge_job(job)
  local f = redis.call('HMGET', job, 'state', 'owner', 'id')
  if not f[1] then return 'unknown' end
  if f[1] ~= 'succeeded' and f[1] ~= 'failed' and f[1] ~= 'cancelled' then return 'not final' end
  redis.call('DEL', job, job .. ':request', job .. ':submitted', job .. ':result:json', job .. ':result:npz', job .. ':live')
  redis.call('ZREM', 'ss:owner:' .. f[2] .. ':jobs', f[3])
  forget(f[2], 'job:' .. f[3])
  forget(f[2], 'result:' .. f[3])
  return 'purged'
end
"""
)

# KEYS: job. ARGV: now. A finished job that is not a sweep's point, purged ('in a sweep' otherwise).
_PURGE = (
    _PURGE_FUNCTION
    + """
if redis.call('HEXISTS', KEYS[1], 'sweep') == 1 then return 'in a sweep' end
return purge_job(KEYS[1])
"""
)

# KEYS: sweep. ARGV: now. A finished sweep and every point of it, purged.
_PURGE_SWEEP = (
    _PURGE_FUNCTION
    + """
local f = redis.call('HMGET', KEYS[1], 'owner', 'id', 'points', 'ended')
if not f[1] then return 'unknown' end
if tonumber(f[4]) < tonumber(f[3]) then return 'not final' end
for _, id in ipairs(redis.call('LRANGE', KEYS[1] .. ':points', 0, -1)) do purge_job('ss:job:' .. id) end
redis.call('DEL', KEYS[1], KEYS[1] .. ':request', KEYS[1] .. ':points')
redis.call('ZREM', 'ss:owner:' .. f[1] .. ':sweeps', f[2])
forget(f[1], 'sweep:' .. f[2])
return 'purged'
"""
)


def _claim_of(reply: Any) -> "Claim":
    """A claim script's reply: {1, request} started, {0 or 2, state} refused (2: cancel asked), {} unknown."""
    if not reply:
        return Claim(started=False, state=None)
    code, value = reply[0], reply[1]
    if code == 1:
        return Claim(started=True, state="running", request=value or None)
    return Claim(started=False, state=value.decode(), cancel_requested=code == 2)


POINT_FIELDS = ("state", "steps_done", "steps_total", "error", "wall_s", "summary")  # a summary table's
POINT_STATUS_FIELDS = POINT_FIELDS[:3]  # a sweep's status


@dataclass
class Sweep:
    id: str
    owner: str
    created_at: float
    finished_at: float | None
    points: int
    mode: str
    ended: dict[str, int]  # points that ended, by final state
    cancel_requested: bool

    @classmethod
    def from_raw(cls, data: dict[bytes, bytes]) -> "Sweep | None":
        if not data:
            return None
        fields = {key.decode(): value.decode() for key, value in data.items()}
        return cls(
            id=fields["id"],
            owner=fields["owner"],
            created_at=float(fields["created_at"]),
            finished_at=float(fields["finished_at"]) if fields.get("finished_at") else None,
            points=int(fields["points"]),
            mode=fields["mode"],
            ended={state: int(fields.get(state, 0)) for state in FINAL_STATES},
            cancel_requested=fields.get("cancel") == "1",
        )

    @property
    def is_final(self) -> bool:
        return sum(self.ended.values()) >= self.points


@dataclass
class Job:
    id: str
    owner: str
    state: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    steps_done: int
    steps_total: int
    error: str | None
    device: str | None
    attempts: int
    cancel_requested: bool
    live: bool = False  # its event stream carries live spikes (record.live)
    name: str | None = None  # the request's label
    wall_s: float | None = None  # how long its successful run took
    spikes: int | None = None  # spike events in its result, every recorded layer together
    warnings: list[str] = field(default_factory=list)  # what its request may not mean as written

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> "Job":
        def number(key: str) -> float | None:
            return float(data[key]) if data.get(key) else None

        return cls(
            id=data["id"],
            owner=data["owner"],
            state=data["state"],
            created_at=float(data["created_at"]),
            started_at=number("started_at"),
            finished_at=number("finished_at"),
            steps_done=int(data.get("steps_done", 0)),
            steps_total=int(data.get("steps_total", 0)),
            error=data.get("error") or None,
            device=data.get("device") or None,
            attempts=int(data.get("attempts", 0)),
            cancel_requested=data.get("cancel") == "1",
            live=data.get("live") == "1",
            name=data.get("name") or None,
            wall_s=number("wall_s"),
            spikes=sum(layer["spikes"] for layer in json.loads(data["summary"]).values()) if data.get("summary") else None,
            warnings=json.loads(data["warnings"]) if data.get("warnings") else [],
        )

    @classmethod
    def from_raw(cls, data: dict[bytes, bytes]) -> "Job | None":
        """From the record as Redis returns it (bytes); None for a missing record."""
        return cls.from_hash({k.decode(): v.decode() for k, v in data.items()}) if data else None

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES


class InFlightLimit(Exception):
    """The owner already has the maximum number of queued and running jobs."""


class StorageQuota(Exception):
    """The owner's requests and results in the store would pass its quota."""

    def __init__(self, stored: int, adding: int, quota: int) -> None:
        super().__init__(
            f"this key keeps {stored:,} bytes of requests and results in the job store, and this one adds {adding:,}: "
            f"over its quota of {quota:,} bytes; delete finished jobs or sweeps (DELETE with ?purge=true) "
            f"or wait for them to expire"
        )
        self.stored, self.adding, self.quota = stored, adding, quota


NO_QUOTA = 2**62  # the quota of a store call given none


def _submitted(reply: list[Any], refusal: str, adding: int, quota: int) -> None:
    """A submit script's reply: {1} recorded, {0} too many in flight, {-1, stored} over the quota."""
    if reply[0] == 0:
        raise InFlightLimit(refusal)
    if reply[0] == -1:
        raise StorageQuota(int(reply[1]), adding, quota)


@dataclass(frozen=True)
class Claim:
    """A worker's attempt to start a job: started with its request, or why not."""

    started: bool
    state: str | None
    request: bytes | None = None
    cancel_requested: bool = False


@dataclass(frozen=True)
class Success:
    """A run that succeeded, encoded, as ``JobStore.succeed_many`` stores it."""

    job_id: str
    result_json: bytes
    result_npz: bytes
    neuron_steps: int
    wall_s: float
    lease_token: str = ""
    summary: bytes = b"{}"  # JSON: spikes and mean rate per recorded layer, kept in the record


@dataclass(frozen=True)
class Submission:
    """A new job as the submit script takes it (keys and arguments), and its record as written."""

    job: Job
    keys: list[str]
    args: list[Any]
    refusal: str  # why it is refused when the owner has too many jobs in flight
    quota: int = NO_QUOTA  # the bytes the owner may keep in the store

    @property
    def bytes(self) -> int:
        """What the job keeps in the store: its request, and the request as submitted if different."""
        return len(self.args[4]) + len(self.args[6])


def new_submission(
    owner: str,
    request_json: bytes | memoryview,
    steps_total: int,
    max_in_flight: int,
    submitted: bytes | memoryview = b"",
    message: Callable[[str], bytes] | None = None,
    live: bool = False,
    name: str | None = None,
    quota: int = NO_QUOTA,
    warnings: list[str] | None = None,
) -> Submission:
    """A new queued job that runs ``request_json``; ``submitted`` is the request as the client
    sent it, when that differs (a NIR network, expanded to layers for the worker).
    ``message(job_id)``, when given, is the job's queue message, pushed onto ``QUEUE_KEY`` in the
    same atomic script: a job is never recorded without its message, nor the reverse. ``live``:
    the request names layers in ``record.live`` (its event stream reads them); ``name``: the
    request's label, kept for job lists; ``quota``: the bytes the owner may keep in the store;
    ``warnings``: what the request may not mean as written, kept in the record.
    Submitted by ``JobStore.submit`` or, on the API's event loop, ``AsyncJobStore.submit``."""
    job_id = uuid.uuid4().hex
    now = time.time()
    keys = [
        job_key(job_id),
        request_key(job_id),
        owner_jobs_key(owner),
        owner_active_key(owner),
        state_set_key("queued"),
        STATS_KEY,
        submitted_key(job_id),
        QUEUE_KEY,
    ]
    queued = message(job_id) if message is not None else b""
    noted = json.dumps(warnings) if warnings else ""
    args: list[Any] = [job_id, owner, now, steps_total, request_json, max_in_flight, submitted, queued, int(live), name or ""]
    args += [quota, noted]
    # the record as the script writes it, without reading it back
    written = {"id": job_id, "owner": owner, "state": "queued", "created_at": repr(now), "steps_total": str(steps_total)}
    written |= ({"live": "1"} if live else {}) | ({"name": name} if name else {}) | ({"warnings": noted} if noted else {})
    job = Job.from_hash(written)
    return Submission(job, keys, args, f"{max_in_flight} jobs are already queued or running for this key", quota)


class JobStore:
    """Job records and their state changes. ``max_attempts`` and ``time_limit_s`` settle jobs whose
    worker died (see ``settle`` above): after that many deaths, or a run that lasted past the time
    limit, the job fails with the reason instead of running again."""

    def __init__(
        self,
        client: redis.Redis,
        job_ttl_s: int = 7 * 24 * 3600,
        result_ttl_s: int = 24 * 3600,
        max_attempts: int = 3,
        time_limit_s: float = 3600,
    ) -> None:
        # Any: redis-py types every reply as bytes | str (| awaitable); this client answers bytes
        self.redis: Any = client
        self.job_ttl_s = job_ttl_s
        self.result_ttl_s = result_ttl_s
        self.max_attempts = max_attempts
        self.time_limit_s = time_limit_s
        self._submit = client.register_script(_SUBMIT)
        self._transition = client.register_script(_TRANSITION)
        self._cancel = client.register_script(_CANCEL)
        self._succeed = client.register_script(_SUCCEED)
        self._start = client.register_script(_START)
        self._take_next = client.register_script(_TAKE_NEXT)
        self._renew = client.register_script(_RENEW)
        self._requeue = client.register_script(_REQUEUE)
        self._reassign = client.register_script(_REASSIGN)
        self._submit_sweep = client.register_script(_SUBMIT_SWEEP)
        self._give_back = client.register_script(_GIVE_BACK)
        self._restore = client.register_script(_RESTORE)
        self._cancel_sweep = client.register_script(_CANCEL_SWEEP)
        self._stored = client.register_script(_STORED)
        self._purge = client.register_script(_PURGE)
        self._purge_sweep = client.register_script(_PURGE_SWEEP)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> "JobStore":
        return cls(redis.Redis.from_url(url, decode_responses=False, health_check_interval=10), **kwargs)

    @classmethod
    def from_settings(cls, settings: "Settings") -> "JobStore":
        return cls.from_url(
            settings.redis_url,
            job_ttl_s=settings.job_ttl_s,
            result_ttl_s=settings.result_ttl_s,
            max_attempts=settings.max_attempts,
            time_limit_s=settings.soft_time_limit_s,
        )

    @property
    def _policy(self) -> list[Any]:
        """The settle arguments: max attempts, time limit, job ttl."""
        return [self.max_attempts, f"{self.time_limit_s:g}", self.job_ttl_s]

    # --- records ------------------------------------------------------------------------------

    def create(self, owner: str, request_json: bytes | memoryview, steps_total: int, max_in_flight: int, **options: Any) -> Job:
        """A new queued job: ``submit`` of ``new_submission``, which says what each argument is."""
        return self.submit(new_submission(owner, request_json, steps_total, max_in_flight, **options))

    def submit(self, submission: Submission) -> Job:
        """Records the job and its queue message in one atomic script; InFlightLimit when the
        owner has too many jobs queued or running, StorageQuota when it keeps too much."""
        reply = self._submit(keys=submission.keys, args=submission.args)
        _submitted(reply, submission.refusal, submission.bytes, submission.quota)
        return submission.job

    def get(self, job_id: str) -> Job | None:
        return Job.from_raw(self.redis.hgetall(job_key(job_id)))

    def request_json(self, job_id: str) -> bytes | None:
        """The request as the client submitted it."""
        submitted, run = self.redis.mget(submitted_key(job_id), request_key(job_id))
        return submitted or run

    def owned_count(self, owner: str) -> int:
        return self.redis.zcard(owner_jobs_key(owner))

    def reassign(self, old_owner: str, new_owner: str) -> int:
        """Gives every job and sweep of ``old_owner`` to ``new_owner`` (one atomic step); returns
        how many jobs."""
        keys = [owner_jobs_key(old_owner), owner_jobs_key(new_owner), owner_active_key(old_owner), owner_active_key(new_owner)]
        keys += [owner_sweeps_key(old_owner), owner_sweeps_key(new_owner)]
        keys += [owner_sweep_points_key(old_owner), owner_sweep_points_key(new_owner), owner_stored_key(old_owner)]
        return int(self._reassign(keys=keys, args=[new_owner]))

    def stored_bytes(self, owner: str) -> int:
        """The bytes of requests and results the owner keeps in the store (expired ones taken off)."""
        return int(self._stored(keys=[owner_stored_key(owner)], args=[time.time()]))

    def purge(self, job_id: str) -> str:
        """Deletes a finished job with its request and results, giving its owner the bytes back;
        returns "purged", or why not: "unknown", "not final", "in a sweep" (a sweep's point goes
        with its sweep)."""
        return self._purge(keys=[job_key(job_id)], args=[time.time()]).decode()

    def purge_sweep(self, sweep_id: str) -> str:
        """Deletes a finished sweep with every point's job, request and results; returns "purged",
        "unknown" or "not final"."""
        return self._purge_sweep(keys=[sweep_key(sweep_id)], args=[time.time()]).decode()

    def list_owned(self, owner: str, offset: int, limit: int) -> tuple[list[Job], int]:
        """A page of the owner's jobs, newest first, and how many there are."""
        records, total = self._page(owner_jobs_key(owner), job_key, offset, limit)
        return [job for job in map(Job.from_raw, records) if job is not None], total

    def _page(self, index: str, record_key: Callable[[str], str], offset: int, limit: int) -> tuple[list[Any], int]:
        """The records of a page of the ids in the sorted set ``index``, newest first, and how many
        ids it holds: two round trips whatever the page's size (one HGETALL each, pipelined)."""
        ids = self.redis.zrevrange(index, offset, offset + limit - 1)
        pipe = self.redis.pipeline(transaction=False)
        for record_id in ids:
            pipe.hgetall(record_key(record_id.decode()))
        pipe.zcard(index)
        *records, total = pipe.execute()
        return records, total

    # --- sweeps -------------------------------------------------------------------------------

    def create_sweep(
        self,
        owner: str,
        sweep_json: bytes | memoryview,
        mode: str,
        points: list[tuple[bytes, int, bool]],
        max_points_in_flight: int,
        message: Callable[[list[str]], bytes],
        groups: list[list[int]] | None = None,
        quota: int = NO_QUOTA,
        axes: bytes = b"",
    ) -> "Sweep":
        """A new sweep whose points (request JSON, steps, live) are queued as jobs, with their queue
        messages (``message(job_ids)`` for each of ``groups``, lists of point indices that run
        together; default one per point), in one atomic script; InFlightLimit when the owner's
        unfinished sweep points would exceed ``max_points_in_flight``, StorageQuota when the sweep
        and its points' requests would pass the owner's ``quota`` of stored bytes. ``axes`` (JSON:
        ``worker.simulation.sweep.table_axes``) is kept for its summary table."""
        sweep_id = uuid.uuid4().hex
        now = time.time()
        keys = [
            sweep_key(sweep_id),
            sweep_request_key(sweep_id),
            sweep_points_key(sweep_id),
            owner_sweeps_key(owner),
            owner_sweep_points_key(owner),
            state_set_key("queued"),
            STATS_KEY,
            QUEUE_KEY,
        ]
        groups = groups if groups is not None else [[index] for index in range(len(points))]
        job_ids = [uuid.uuid4().hex for _ in points]
        args: list[Any] = [sweep_id, owner, now, max_points_in_flight, len(points), mode, sweep_json, len(groups), quota, axes]
        for job_id, (request_json, steps, live) in zip(job_ids, points, strict=True):
            args += [job_id, steps, request_json, int(live)]
        args += [message([job_ids[index] for index in group]) for group in groups]
        reply = self._submit_sweep(keys=keys, args=args)
        adding = len(sweep_json) + sum(len(request_json) for request_json, _, _ in points)
        _submitted(reply, f"this key's unfinished sweep points would exceed {max_points_in_flight}", adding, quota)
        return Sweep(sweep_id, owner, now, None, len(points), mode, {state: 0 for state in FINAL_STATES}, False)

    def cancel_sweep(self, sweep_id: str) -> bool:
        """Flags the sweep and cancels every point not yet finished (queued ones at once)."""
        keys = [sweep_key(sweep_id), sweep_points_key(sweep_id), STATS_KEY]
        return bool(self._cancel_sweep(keys=keys, args=[time.time(), self.job_ttl_s]))

    def list_sweeps(self, owner: str, offset: int, limit: int) -> tuple[list["Sweep"], int]:
        """A page of the owner's sweeps, newest first, and how many there are."""
        records, total = self._page(owner_sweeps_key(owner), sweep_key, offset, limit)
        return [sweep for sweep in map(Sweep.from_raw, records) if sweep is not None], total

    # --- state changes ------------------------------------------------------------------------

    def transition(self, job_id: str, allowed: tuple[str, ...], to: str, **fields: Any) -> tuple[bool, str | None]:
        """Moves the job to ``to`` if it is in one of ``allowed``; returns (moved, state now).
        A job moved to a final state expires after ``job_ttl_s``."""
        ttl = self.job_ttl_s if to in FINAL_STATES else ""
        args: list[Any] = [",".join(allowed), to, time.time(), ttl]
        for key, value in fields.items():
            args += [key, "" if value is None else value]
        reply = self._transition(keys=[job_key(job_id), STATS_KEY], args=args)
        if not reply:
            return False, None
        return bool(reply[0]), reply[1].decode() if isinstance(reply[1], bytes) else reply[1]

    def claim(self, job_id: str, device: str, token: str, lease_s: float) -> "Claim":
        """Starts the job for this worker in one round trip (see ``start``), returning its request."""
        return self.claim_many([job_id], device, [token], lease_s)[0]

    def claim_many(self, job_ids: list[str], device: str, tokens: list[str], lease_s: float) -> list["Claim"]:
        """``claim`` for several jobs (each with its lease token) in one round trip."""
        now = time.time()
        lease_ms = int(lease_s * 1000)
        calls = [
            ([job_key(job_id), lease_key(job_id), STATS_KEY, request_key(job_id)], [now, device, token, lease_ms, *self._policy])
            for job_id, token in zip(job_ids, tokens, strict=True)
        ]
        return [_claim_of(reply) for reply in self._pipelined(self._start, calls)]

    def take_next(self, task: str, device: str, token: str, lease_s: float) -> tuple[str, "Claim"] | None:
        """The oldest message in the job queue, taken from it when it runs one job (Celery task
        ``task``, its task id the job's id), with its job claimed as ``claim`` claims one, in one
        round trip: (job id, claim). None when the queue is empty or its oldest message is of
        another kind (a batch of sweep points, say), which stays where it was. A worker that took
        a message this way answers for its job as for one Celery handed it: the claim's lease
        covers it, and Redis never sees the message again."""
        args = [time.time(), device, token, int(lease_s * 1000), *self._policy, task]
        reply = self._pipelined(self._take_next, [([QUEUE_KEY, STATS_KEY], args)])[0]
        return (reply[0].decode(), _claim_of(reply[1])) if reply else None

    def _pipelined(self, script: Any, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """``script`` called once per (keys, args) in one round trip, by its hash in a plain
        pipeline: redis-py's pipelined scripts ask Redis whether the script is loaded on every
        execute, a second round trip. A Redis that lost its scripts (a restart) answers NOSCRIPT
        to every call; the script is then loaded and the calls sent again (a refused ``EVALSHA``
        changed nothing)."""
        for attempt in range(2):
            pipe = self.redis.pipeline(transaction=False)
            for keys, args in calls:
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            try:
                return pipe.execute()
            except redis.exceptions.NoScriptError:
                if attempt:
                    raise
                self.redis.script_load(script.script)
        raise AssertionError("unreachable")

    def start(self, job_id: str, device: str, token: str = "", lease_s: float = 20.0) -> bool:
        """queued -> running, taking the lease; running -> running only if the lease has lapsed
        (and the dead attempt did not end the job). Refused for a job whose cancel was requested."""
        return self.claim(job_id, device, token or uuid.uuid4().hex, lease_s).started

    def renew_lease(self, job_id: str, token: str, lease_s: float) -> bool:
        return bool(self._renew(keys=[lease_key(job_id), job_key(job_id)], args=[token, int(lease_s * 1000), time.time()]))

    def give_back(self, job_id: str, token: str) -> bool:
        """running -> queued for a job whose lease ``token`` holds, its new queue message sent by a
        worker's heartbeat (``to_resend``); False when the job is not this worker's any more."""
        keys = [job_key(job_id), lease_key(job_id), STATS_KEY]
        return bool(self._give_back(keys=keys, args=[time.time(), token, self.job_ttl_s]))

    def release_lease(self, job_id: str, token: str) -> None:
        if self.redis.get(lease_key(job_id)) == token.encode():
            self.redis.delete(lease_key(job_id))

    def settle_orphans(self) -> dict[str, str]:
        """Running jobs whose lease lapsed are settled: requeued (and marked for a new queue
        message), failed or cancelled. Returns {job id: new state}."""
        settled = {}
        for raw in self.redis.smembers(state_set_key("running")):
            job_id = raw.decode()
            state = self._requeue(keys=[job_key(job_id), lease_key(job_id), STATS_KEY], args=[time.time(), *self._policy])
            if state:
                settled[job_id] = state.decode()
        return settled

    def restore_untaken(self, older_than_s: float) -> list[str]:
        """Queue messages that a worker took but whose jobs it never started (it died between the
        two), back to the queue: taken longer than ``older_than_s`` ago, every job they name still
        queued. A live worker starts a job moments after taking its message; Redis would hand the
        message out again only after its visibility timeout, an hour away. Restoring a message
        that was not lost is harmless: the second start is refused. Returns the jobs' ids."""
        restored: list[str] = []
        for tag, taken_at in self.redis.zrangebyscore(UNACKED_INDEX_KEY, 0, time.time() - older_than_s, withscores=True):
            raw = self.redis.hget(UNACKED_KEY, tag)
            try:
                message, _, routing_key = json.loads(raw)
                first = json.loads(base64.b64decode(message["body"]))[0][0]
            except (TypeError, ValueError, KeyError, IndexError):
                continue  # gone meanwhile, or not a job's message
            job_ids = [str(job_id) for job_id in (first if isinstance(first, list) else [first])]
            pipe = self.redis.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.hmget(job_key(job_id), "state", "started_at")
            records = pipe.execute()
            if any(state != b"queued" for state, _ in records):
                continue  # started (its lease tells whether its worker lives) or ended
            # Started since the message was taken, then requeued with a message of its own: this
            # one is stale (a killed batch's), and is dropped instead of run once more.
            stale = any(started is not None and float(started) > taken_at for _, started in records)
            keys = [UNACKED_KEY, UNACKED_INDEX_KEY, routing_key]
            if self._restore(keys=keys, args=[tag, raw, "" if stale else json.dumps(message)]) and not stale:
                restored += job_ids
        return restored

    def to_resend(self) -> list[str]:
        """Requeued jobs whose queue message has not been sent yet."""
        return [raw.decode() for raw in self.redis.smembers(RESEND_KEY)]

    def resent(self, job_id: str) -> None:
        self.redis.srem(RESEND_KEY, job_id)

    def progress(self, job_id: str, steps_done: int, steps_total: int) -> None:
        self.progress_many([job_id], steps_done, steps_total)

    def progress_many(self, job_ids: list[str], steps_done: int, steps_total: int) -> None:
        """The same progress for running jobs (a batch of sweep points), in one round trip."""
        event = json.dumps({"status": "running", "steps_done": steps_done, "steps_total": steps_total})
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hset(job_key(job_id), "steps_done", steps_done)
            pipe.publish(events_channel(job_id), event)
        pipe.execute()

    def live_chunk(self, job_id: str, start: int, chunk_json: bytes) -> None:
        """Appends a chunk's live spikes to the job's stream (the newest LIVE_MAX_CHUNKS are kept).
        A chunk at step 0 begins a run, so a rerun of a requeued job replaces its first run's
        chunks. The stream expires an hour after its last chunk, a minute after the job ends."""
        pipe = self.redis.pipeline(transaction=False)
        if start == 0:
            pipe.delete(live_key(job_id))
        pipe.xadd(live_key(job_id), {"chunk": chunk_json}, maxlen=LIVE_MAX_CHUNKS, approximate=False)
        pipe.expire(live_key(job_id), LIVE_IDLE_TTL_S)
        pipe.execute()

    def request_cancel(self, job_id: str) -> Job | None:
        """Flags the job (one atomic step); a queued job is cancelled at once, a running one by its
        worker at its next chunk, or when its dead worker's lease lapses."""
        self._cancel(keys=[job_key(job_id), STATS_KEY], args=[time.time(), self.job_ttl_s])
        return self.get(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        return self.cancels_requested([job_id]) == [True]

    def cancels_requested(self, job_ids: list[str]) -> list[bool]:
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(job_key(job_id), "cancel")
        return [flag == b"1" for flag in pipe.execute()]

    def succeed(
        self,
        job_id: str,
        result_json: bytes,
        result_npz: bytes,
        neuron_steps: int,
        wall_s: float,
        lease_token: str = "",
        summary: bytes = b"{}",
    ) -> bool:
        """running -> succeeded with the results (one round trip); releases the lease if ``lease_token``
        holds it. ``summary`` (JSON: spikes and mean rate per recorded layer) stays in the record."""
        return self.succeed_many([Success(job_id, result_json, result_npz, neuron_steps, wall_s, lease_token, summary)])[0]

    def succeed_many(self, successes: list[Success]) -> list[bool]:
        """``succeed`` for several jobs in one round trip (sweep points run as one batch end
        together); for each, whether it moved (False: the record was no longer running, or gone)."""
        now = time.time()
        calls = []
        for done in successes:
            keys = [job_key(done.job_id), request_key(done.job_id), lease_key(done.job_id), STATS_KEY]
            keys += [result_key(done.job_id, "json"), result_key(done.job_id, "npz")]
            args: list[Any] = [now, done.lease_token, self.result_ttl_s, self.job_ttl_s, done.result_json, done.result_npz]
            args += [done.neuron_steps, done.wall_s, done.summary, *duration_bucket(done.wall_s)]
            calls.append((keys, args))
        return [bool(reply and reply[0]) for reply in self._pipelined(self._succeed, calls)]  # {} when gone

    def fail(self, job_id: str, error: str) -> bool:
        return self.transition(job_id, ("queued", "running"), "failed", error=error)[0]

    def cancelled(self, job_id: str) -> bool:
        return self.transition(job_id, ("queued", "running"), "cancelled")[0]

    def result(self, job_id: str, fmt: str) -> bytes | None:
        return self.redis.get(result_key(job_id, fmt))

    # --- metrics ------------------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        raw = self.redis.hgetall(STATS_KEY)
        return {k.decode(): float(v) for k, v in raw.items()}

    def active_counts(self) -> dict[str, int]:
        return {state: self.redis.scard(state_set_key(state)) for state in ACTIVE_STATES}

    def ping(self) -> bool:
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False


class AsyncJobStore:
    """The API's calls on its event loop, without a thread hop: its reads (a job with its result
    in one round trip), and the submission of a small job (the script ``JobStore.submit`` runs).
    Every other write stays in JobStore."""

    def __init__(self, client: aioredis.Redis) -> None:
        # Any: redis-py types every reply as bytes | str (| awaitable); this client answers bytes
        self.redis: Any = client
        self._submit = client.register_script(_SUBMIT)
        self._stored = client.register_script(_STORED)

    async def submit(self, submission: Submission) -> Job:
        """``JobStore.submit`` on the event loop."""
        reply = await self._submit(keys=submission.keys, args=submission.args)
        _submitted(reply, submission.refusal, submission.bytes, submission.quota)
        return submission.job

    async def stored_bytes(self, owner: str) -> int:
        """``JobStore.stored_bytes`` on the event loop."""
        return int(await self._stored(keys=[owner_stored_key(owner)], args=[time.time()]))

    async def get(self, job_id: str) -> Job | None:
        return Job.from_raw(await self.redis.hgetall(job_key(job_id)))

    async def state(self, job_id: str) -> str | None:
        state = await self.redis.hget(job_key(job_id), "state")
        return None if state is None else state.decode()

    async def get_with_result(self, job_id: str, fmt: str, first_bytes: int) -> tuple[Job | None, bytes | None, int]:
        """The job, the first ``first_bytes`` of its result and the result's size (0: none), in
        one round trip; a larger result is read on with ``result_range``."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(job_key(job_id))
            pipe.getrange(result_key(job_id, fmt), 0, first_bytes - 1)
            pipe.strlen(result_key(job_id, fmt))
            data, head, size = await pipe.execute()
        return Job.from_raw(data), (head if size else None), size

    async def result_whole(self, job_id: str, fmt: str) -> bytes | None:
        return await self.redis.get(result_key(job_id, fmt))

    async def sweep(self, sweep_id: str) -> "Sweep | None":
        return Sweep.from_raw(await self.redis.hgetall(sweep_key(sweep_id)))

    async def sweep_axes(self, sweep_id: str) -> bytes | None:
        """What the sweep's summary table needs (``worker.simulation.sweep.table_axes``, JSON);
        None for a sweep recorded without it."""
        return await self.redis.hget(sweep_key(sweep_id), "axes") or None

    async def sweep_request(self, sweep_id: str) -> bytes | None:
        return await self.redis.get(sweep_request_key(sweep_id))

    async def sweep_points(self, sweep_id: str, fields: tuple[str, ...] = POINT_FIELDS) -> list[dict[str, str]]:
        """Every point's record ``fields`` (default: id, state, steps, error, wall_s, summary), in
        point order, in two round trips; an expired point's entry has its id only."""
        ids = [raw.decode() for raw in await self.redis.lrange(sweep_points_key(sweep_id), 0, -1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(job_key(job_id), *fields)
            replies = await pipe.execute()
        return [
            {"id": job_id, **{name: value.decode() for name, value in zip(fields, reply, strict=True) if value is not None}}
            for job_id, reply in zip(ids, replies, strict=True)
        ]

    async def live_after(self, job_id: str, after: str) -> list[tuple[str, bytes]]:
        """The job's live chunks (stream id, chunk JSON) newer than the id ``after`` ("0": all)."""
        entries = await self.redis.xrange(live_key(job_id), min=f"({after}" if after != "0" else "-", max="+")
        return [(entry_id.decode(), fields[b"chunk"]) for entry_id, fields in entries]

    async def result_range(self, job_id: str, fmt: str, start: int, stop: int) -> bytes:
        """Bytes ``start`` to ``stop - 1`` of the result: large results are sent in pieces, so no
        reply holds a connection for long and no API process holds a whole result."""
        return await self.redis.getrange(result_key(job_id, fmt), start, stop - 1)
