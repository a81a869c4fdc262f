-- Records one job made by a trigger rule, unless its event was seen already. Its batch
-- (the rule's rolling batch of the day) is created on first use.
-- Arguments:
--   batch, job      the job; `source` the batch's source (for a new batch)
--   spec            the job's spec (JSON); `account` its account (slot pool)
--   waits_for       the key of the mask-wait set to join, or null: the job is queued
--   late_at         when a job waiting for its mask has waited too long
--   seen            the key marking the latest event of this rule and object
--   event_id        the event's identity (version or ETag, and sequencer)
--   object_id       the object's version or ETag alone
--   order           the event's sequencer in comparable form, or '' (none)
--   seen_ttl_s      how long the mark is kept
--   notify          the rule's notification URL, or null; a new batch keeps it and
--                   notifies as each of its jobs ends (see transition.lua)
-- An event already marked records nothing; nor does an older event of the same object
-- version (a smaller sequencer, same version or ETag). An event of other content is
-- never judged by sequencer: the caller's HEAD has shown it is the current object, and
-- sequencers of different servers (MinIO nodes) need not agree. A job of a cancelled
-- batch is recorded as cancelled.
-- Returns the state the job was recorded in, or 'duplicate' or 'stale'.
local mark = redis.call('HMGET', A.seen, 'id', 'order', 'object')
if mark[1] == A.event_id then return 'duplicate' end
local same_object = mark[3] == A.object_id
if same_object and A.order ~= '' and mark[2] and mark[2] ~= '' and A.order < mark[2] then
  return 'stale'
end
local jkey, bkey = job_key(A.batch, A.job), batch_key(A.batch)
if redis.call('EXISTS', jkey) == 1 then return 'duplicate' end
if redis.call('EXISTS', bkey) == 0 then
  redis.call('HSET', bkey, 'created_at', A.now, 'total', 0, 'priority', 1, 'source', A.source)
  redis.call('ZADD', P .. 'batches', A.now, A.batch)
  if A.notify ~= cjson.null then
    redis.call('HSET', bkey, 'notify', A.notify, 'notify_each', 'job')
  end
end
local state = 'queued'
if A.waits_for ~= cjson.null then state = 'awaiting_mask' end
if redis.call('HGET', bkey, 'cancelled') == '1' then state = 'cancelled' end
redis.call('HSET', jkey, 'spec', A.spec, 'state', state, 'attempt', 0, 'updated_at', A.now,
  'account', A.account)
redis.call('RPUSH', bkey .. ':jobs', A.job)
redis.call('RPUSH', line_key(bkey, A.account), A.job)
redis.call('HINCRBY', bkey, 'total', 1)
redis.call('HINCRBY', bkey, 'n:' .. state, 1)
redis.call('HSET', A.seen, 'id', A.event_id, 'order', A.order, 'object', A.object_id)
redis.call('EXPIRE', A.seen, A.seen_ttl_s)
if state == 'awaiting_mask' then
  redis.call('ZADD', AWAITING, A.late_at, jkey)
  redis.call('SADD', A.waits_for, jkey)
  -- The sweep takes the job out when it stops waiting; the expiry is a safety net.
  redis.call('EXPIREAT', A.waits_for, math.ceil(A.late_at) + 3600)
elseif state == 'queued' then
  join_ready(A.account, A.batch)
  dispatch(A.account)
end
return state
