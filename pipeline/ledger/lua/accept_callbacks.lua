-- Records verified provider callbacks, any number in one round trip (the receiver
-- batches them).
-- Arguments:
--   mark_ttl_s   how long the mark of a first final callback is kept
--   callbacks    a list of {batch, job, attempt, final (bool), task_id (or null)}
-- The answer for each, in order:
--   'unknown'    no such job
--   'stale'      another attempt, or the job is not in flight
--   'pending'    the provider says the task still runs
--   'duplicate'  its first final callback came before
--   'collect'    the first final callback: marked, the attempt's slot given back and
--                its collect queued
-- Slots that came free are filled at once, each from its own pool.
local answers, freed = {}, {}
for i, cb in ipairs(A.callbacks) do
  local jkey = job_key(cb.batch, cb.job)
  local fields = redis.call('HMGET', jkey, 'state', 'attempt')
  local answer = 'collect'
  if not fields[1] then
    answer = 'unknown'
  elseif tonumber(fields[2]) ~= cb.attempt or not IN_FLIGHT[fields[1]] then
    answer = 'stale'
  elseif not cb.final then
    answer = 'pending'
  else
    if cb.task_id ~= cjson.null then redis.call('HSETNX', jkey, 'provider_task_id', cb.task_id) end
    local mark = P .. 'callback:' .. cb.batch .. ':' .. cb.job .. ':' .. cb.attempt
    if not redis.call('SET', mark, '1', 'NX', 'EX', A.mark_ttl_s) then
      answer = 'duplicate'
    else
      local pool = pool_of(jkey)
      if holds_slot(pool, jkey, cb.attempt) then
        redis.call('HDEL', pool_key(pool, 'leases'), jkey)
        freed[pool] = true
      end
      outbox('collect', cb.batch, cb.job, cb.attempt)
    end
  end
  answers[i] = answer
end
for pool in pairs(freed) do dispatch(pool) end
return answers
