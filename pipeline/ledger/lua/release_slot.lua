-- Gives back the slot that one attempt of a job holds (its provider task has ended),
-- once, and fills it (see `dispatch` in common.lua). Arguments: batch, job, attempt. Returns 1 if it held the slot.
local jkey = job_key(A.batch, A.job)
local pool = pool_of(jkey)
if not holds_slot(pool, jkey, A.attempt) then return 0 end
redis.call('HDEL', pool_key(pool, 'leases'), jkey)
dispatch(pool)
return 1
