-- needs: transition
-- KEYS: job, stats. ARGV: allowed from-states, to-state, now, job ttl ('' for none), then
-- field/value pairs.
local ttl = ARGV[4] ~= '' and ARGV[4] or nil
return transition(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], {unpack(ARGV, 5)}, ttl)
