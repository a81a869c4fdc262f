-- A dispatched job whose request is ready takes a free slot of its pool. With no slot
-- free (or the pool stopped) it joins the line of jobs waiting for one, filed to
-- be late only after `wait_late_s`, and `hand_over` (common.lua) gives it the next
-- slot that comes free and wakes its submit task. The dispatcher runs after a slot is
-- taken (once every slot is in use, it dispatches jobs ahead of the next free ones).
-- The job stays `dispatched`: its task's move to `submitting` is what claims the POST.
-- Arguments: batch, job, attempt, wait_late_s.
-- Returns 'go' (it holds a slot), 'wait' (in line for one) or 'gone' (the job is no
-- longer dispatched at this attempt).
local jkey = job_key(A.batch, A.job)
local pool = pool_of(jkey)
if not dispatched(jkey, A.attempt) then return 'gone' end
if holds_slot(pool, jkey, A.attempt) then return 'go' end
if slot_free(pool) and not stopped(pool) then
  lease(pool, jkey, A.attempt)
  dispatch(pool)
  return 'go'
end
redis.call('RPUSH', pool_key(pool, 'waiting'), A.attempt .. '|' .. jkey)
redis.call('ZADD', AWAITING, A.now + A.wait_late_s, jkey)
return 'wait'
