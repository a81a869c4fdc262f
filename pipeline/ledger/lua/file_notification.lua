-- Files an outgoing notification before its first attempt (pipeline/notify.py), once
-- per webhook id: a `notify` entry the relay published twice files nothing the second
-- time. The delivery is due `lease_s` from now, so if the first attempt never records
-- its outcome (the worker died) the reconcile sweep makes it again then.
-- Arguments:
--   id        the webhook id
--   url, body where it goes and what it says (the same on every attempt)
--   lease_s   how long the first attempt may take before the sweep takes over
--   keep_s    how long the delivery is kept at most (past the last scheduled attempt)
-- Returns 1 if filed, 0 if that webhook id was filed before.
local key = P .. 'notify:' .. A.id
if redis.call('EXISTS', key) == 1 then return 0 end
redis.call('HSET', key, 'url', A.url, 'body', A.body, 'attempts', 0)
redis.call('EXPIRE', key, A.keep_s)
redis.call('ZADD', P .. 'notify-due', A.now + A.lease_s, A.id)
return 1
