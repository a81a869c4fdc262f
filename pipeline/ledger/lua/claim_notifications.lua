-- Claims the outgoing notifications whose next attempt is due (pipeline/notify.py).
-- Each due delivery is re-filed `lease_s` later in the same step, so a sweep running
-- at the same time finds it not due and never sends it at once with this one; if the
-- claimer dies, the delivery is due again once the lease ends. The claimer records the
-- attempt's outcome (sent, due again later, or given up). Ids whose delivery is gone
-- (sent, given up, expired) are dropped.
-- Arguments:
--   limit     how many due deliveries to take at most
--   lease_s   how long a claimed delivery stays filed before it may be claimed again
-- Returns {id, url, body, attempts made} of each claimed delivery, flattened.
local DUE = P .. 'notify-due'
local claimed = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', DUE, '-inf', A.now, 'LIMIT', 0, A.limit)) do
  local fields = redis.call('HMGET', P .. 'notify:' .. id, 'url', 'body', 'attempts')
  if fields[1] and fields[2] then
    redis.call('ZADD', DUE, A.now + A.lease_s, id)
    table.insert(claimed, id)
    table.insert(claimed, fields[1])
    table.insert(claimed, fields[2])
    table.insert(claimed, fields[3] or '0')
  else
    redis.call('ZREM', DUE, id)
  end
end
return claimed
