-- Moves one job to `to_state` if it is in one of `from_states` (and at `attempt`, unless null), and
-- keeps what hangs on its state: the batch's counters and spend, its filing for the
-- reconcile sweep, its provider slot, its place in line and its follow-up work. The
-- caller has checked the move against the table in pipeline/states.py.
-- Arguments:
--   batch, job     the job
--   from_states    the states it may be in (a list)
--   to_state       the state it moves to
--   attempt        the attempt it must be at, or null for any
--   new_attempt    true: the move starts a new attempt
--   fields         name -> value to set on the job ("" deletes the field)
--   cost_delta     credits to add to the batch's spend (and its account's today), or null
--   late_at        when the sweep should look at it next, or null: not filed
--   release        true: the job gives back any slot it holds
--   follow_up      a task to queue for the job ('collect'), or null
--   finished_counters  when `to_state` is terminal: the batch's counters of every terminal
--                  state ('n:stored', ...), to tell whether the batch has finished; else null
-- A job moving into or out of `failed` joins or leaves the batch's failed list; a job that
-- ends counts in the batch's ends of that minute.
-- A job moving to `queued` goes to the front of its batch's line in its pool and forgets
-- its last attempt's provider task. A slot
-- given back, a dispatched job moving on or a job back in line runs its pool's dispatcher.
-- A job that ends (moves into a terminal state) in a batch with a `notify` URL queues a
-- `notify` entry (pipeline/notify.py): for each job of a rule's batch (`notify_each` is
-- 'job'), naming the job and its attempt; for any other batch once, as its last job ends
-- (its terminal counters add up to its total), naming the batch ('' for the job) and how
-- many times it has finished (a batch whose failed jobs are retried finishes again).
-- Returns {1 if applied else 0, the state it was in ('' if no such job), its attempt,
--          1 if it gave back a slot}.
local jkey, bkey = job_key(A.batch, A.job), batch_key(A.batch)
local pool = pool_of(jkey)
local state = redis.call('HGET', jkey, 'state')
if not state then return {0, '', 0, 0} end
local attempt = tonumber(redis.call('HGET', jkey, 'attempt'))
local allowed = false
for _, from in ipairs(A.from_states) do allowed = allowed or from == state end
if not allowed or (A.attempt ~= cjson.null and A.attempt ~= attempt) then
  return {0, state, attempt, 0}
end
if A.new_attempt then attempt = attempt + 1 end
redis.call('HSET', jkey, 'state', A.to_state, 'attempt', attempt, 'updated_at', A.now)
for name, value in pairs(A.fields) do
  if value == '' then redis.call('HDEL', jkey, name) else redis.call('HSET', jkey, name, value) end
end
if state ~= A.to_state then
  count_move(bkey, state, A.to_state)
  -- The batch's failed jobs, by when they failed (the dashboard's list, `retry`).
  if A.to_state == 'failed' then redis.call('ZADD', bkey .. ':failed', A.now, A.job) end
  if state == 'failed' then redis.call('ZREM', bkey .. ':failed', A.job) end
  -- Jobs ended per minute, for the batch's throughput and ETA.
  if A.finished_counters ~= cjson.null then
    redis.call('HINCRBY', bkey .. ':ends', math.floor(A.now / 60), 1)
  end
end
if A.cost_delta ~= cjson.null then
  redis.call('HINCRBYFLOAT', bkey, 'cost_credits', A.cost_delta)
  redis.call('HINCRBYFLOAT', pool_key(pool, 'spend'), A.day, A.cost_delta)
end
if A.late_at ~= cjson.null then
  redis.call('ZADD', AWAITING, A.late_at, jkey)
else
  redis.call('ZREM', AWAITING, jkey)
end
local released = 0
if A.release then released = redis.call('HDEL', pool_key(pool, 'leases'), jkey) end
local unpicked = state == 'dispatched' and A.to_state ~= 'dispatched'
if unpicked then redis.call('SREM', pool_key(pool, 'picked'), jkey) end
local requeued = A.to_state == 'queued' and state ~= 'queued'
if requeued then
  -- Its next attempt has a task of its own: the last one's must not be polled for it.
  redis.call('HDEL', jkey, 'provider_task_id', 'polling_url')
  redis.call('LPUSH', requeued_key(bkey, pool), A.job)
  join_ready(pool, A.batch)
end
if A.follow_up ~= cjson.null then outbox(A.follow_up, A.batch, A.job, attempt) end
if A.finished_counters ~= cjson.null and state ~= A.to_state then
  local notify = redis.call('HMGET', bkey, 'notify', 'notify_each', 'total')
  if notify[1] and notify[2] == 'job' then
    outbox('notify', A.batch, A.job, attempt)
  elseif notify[1] then
    local finished = 0
    for _, count in ipairs(redis.call('HMGET', bkey, unpack(A.finished_counters))) do
      finished = finished + tonumber(count or '0')
    end
    if finished == tonumber(notify[3]) then
      outbox('notify', A.batch, '', redis.call('HINCRBY', bkey, 'notified', 1))
    end
  end
end
if released == 1 or unpicked or requeued then dispatch(pool) end
return {1, state, attempt, released}
