-- needs: stored
-- KEYS: none. ARGV: owner, now. The bytes the owner keeps, the expired records taken off.
return stored_total(ARGV[1], ARGV[2])
