-- A page of an owner's jobs or sweeps, newest first, in one round trip.
-- KEYS: the owner's index (jobs or sweeps). ARGV: offset, limit, 'job' or 'sweep'.
-- Returns {how many the index holds, each record's fields and values (empty when it expired)}.
local ids = redis.call('ZREVRANGE', KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[1]) + tonumber(ARGV[2]) - 1)
local records = {}
for i, id in ipairs(ids) do records[i] = redis.call('HGETALL', key[ARGV[3]](id)) end
return {redis.call('ZCARD', KEYS[1]), records}
