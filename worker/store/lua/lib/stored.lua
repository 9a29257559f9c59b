-- A library: what an owner keeps in the store (key.owner_stored, key.owner_stored_expiry).
-- stored_total takes the records that expired off the total and returns it; keep records (or
-- re-records) one record's bytes and expiry ('+inf': none yet); expire_at sets the expiry of a
-- record kept; forget takes a record off.
local function drop(hash, record)
  local bytes = tonumber(redis.call('HGET', hash, record) or '0')
  if bytes > 0 then redis.call('HINCRBY', hash, 'total', 0 - bytes) end
  redis.call('HDEL', hash, record)
end
local function stored_total(owner, now)
  local hash, expiry = key.owner_stored(owner), key.owner_stored_expiry(owner)
  local gone = redis.call('ZRANGEBYSCORE', expiry, '-inf', now)
  for _, record in ipairs(gone) do drop(hash, record) end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', expiry, '-inf', now) end
  return tonumber(redis.call('HGET', hash, 'total') or '0')
end
local function forget(owner, record)
  drop(key.owner_stored(owner), record)
  redis.call('ZREM', key.owner_stored_expiry(owner), record)
end
local function keep(owner, record, bytes, expires_at)
  forget(owner, record)
  local hash = key.owner_stored(owner)
  redis.call('HINCRBY', hash, 'total', bytes)
  redis.call('HSET', hash, record, bytes)
  redis.call('ZADD', key.owner_stored_expiry(owner), expires_at, record)
end
local function expire_at(owner, record, expires_at)
  redis.call('ZADD', key.owner_stored_expiry(owner), 'XX', expires_at, record)
end
