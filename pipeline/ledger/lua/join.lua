-- Puts a batch in line for the dispatcher (once its jobs are recorded, or retried) and
-- fills every free slot. Arguments: batch. Returns how many jobs were dispatched.
join_ready(A.batch)
return dispatch()
