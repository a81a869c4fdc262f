-- Claims the polls that are due (callbacks off: `pipeline/polling.py`). The poll set
-- holds "<attempt>|<job key>" scored by when that attempt's task is next polled. Each
-- due entry whose job is still awaiting its result at that attempt gets a `collect` in
-- the outbox (the collect polls the task) and is re-filed `lease_s` later in the same
-- step: another poller running now finds it not due, and a collect that is lost is
-- queued again once the lease ends. The collect's answer re-files it for its next poll.
-- Entries of jobs that moved on (collecting, ended, another attempt) are dropped; a
-- collect that finds the task still running files its job again.
-- Arguments:
--   limit     how many due entries to take at most
--   lease_s   how long a claimed entry stays filed before it may be claimed again
-- Returns {the claimed entries, the score of the earliest entry left ('' if none)}.
local POLL = P .. 'poll'
local claimed = {}
local due = redis.call('ZRANGEBYSCORE', POLL, '-inf', A.now, 'LIMIT', 0, A.limit)
for _, entry in ipairs(due) do
  local attempt, jkey = string.match(entry, '^(%d+)|(.*)$')
  local fields = redis.call('HMGET', jkey, 'state', 'attempt')
  if fields[1] == 'awaiting_result' and fields[2] == attempt then
    local batch, job = string.match(string.sub(jkey, #P + 5), '^([^:]+):(.*)$')
    redis.call('ZADD', POLL, A.now + A.lease_s, entry)
    outbox('collect', batch, job, attempt)
    table.insert(claimed, entry)
  else
    redis.call('ZREM', POLL, entry)
  end
end
local head = redis.call('ZRANGE', POLL, 0, 0, 'WITHSCORES')
return {claimed, head[2] or ''}
