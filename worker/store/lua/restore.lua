-- KEYS: unacked, unacked index, queue. ARGV: delivery tag, the entry as read, the message ('':
-- drop it). Moves a taken message back to the end of the queue that is read next, or drops a
-- stale one, if its entry is still as read.
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[3] ~= '' then redis.call('RPUSH', KEYS[3], ARGV[3]) end
return 1
