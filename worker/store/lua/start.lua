-- needs: start
-- KEYS: job, lease, stats, request. ARGV: as the library's start after its keys.
return start(KEYS[1], KEYS[2], KEYS[3], KEYS[4], unpack(ARGV))
