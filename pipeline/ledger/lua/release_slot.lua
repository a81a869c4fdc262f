-- Gives back the slot that one attempt of a job holds (its provider task has ended),
-- once, and fills it (see `dispatch` in common.lua). Arguments: batch, job, attempt. Returns 1 if it held the slot.
local jkey = job_key(A.batch, A.job)
if redis.call('HGET', LEASES, jkey) ~= tostring(A.attempt) then return 0 end
redis.call('HDEL', LEASES, jkey)
dispatch()
return 1
