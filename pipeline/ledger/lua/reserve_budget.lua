-- Sets aside `credits` of a batch's budget before a paid submit. Arguments: batch,
-- credits. Returns the amount reserved ('0' when the batch has no budget), or '-1' when
-- spending it could take the batch over its budget.
local bkey = batch_key(A.batch)
local budget = redis.call('HGET', bkey, 'budget_credits')
if not budget then return '0' end
local spent = tonumber(redis.call('HGET', bkey, 'cost_credits') or '0')
local reserved = tonumber(redis.call('HGET', bkey, 'reserved_credits') or '0')
if spent + reserved + A.credits > tonumber(budget) then return '-1' end
redis.call('HINCRBYFLOAT', bkey, 'reserved_credits', A.credits)
return tostring(A.credits)
