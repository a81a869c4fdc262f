-- Shared by every ledger script (`pipeline/ledger/scripts.py` puts it in front of each):
-- the named arguments, the key schema, the outbox and the dispatcher.
--
-- A script takes one argument: a JSON object of named arguments. These four come with
-- every call; each script documents its own.
--   prefix            the ledger's key prefix ("fp:"); see pipeline/ledger/keys.py
--   now               the caller's clock, epoch seconds
--   slots             the provider account's slot count
--   dispatch_late_s   how long a dispatched job may wait for its submit to begin
local A = cjson.decode(ARGV[1])
local P = A.prefix

local LEASES = P .. 'leases'
local READY = P .. 'ready'
local AWAITING = P .. 'awaiting'
local OUTBOX = P .. 'outbox'
local IN_FLIGHT = {submitting = true, awaiting_result = true, collecting = true}

local function job_key(batch, job) return P .. 'job:' .. batch .. ':' .. job end
local function batch_key(batch) return P .. 'batch:' .. batch end

-- Moves one job from `from` to `to` in its batch's counters.
local function count_move(bkey, from, to)
  redis.call('HINCRBY', bkey, 'n:' .. from, -1)
  redis.call('HINCRBY', bkey, 'n:' .. to, 1)
end

-- Queues work for a worker; `pipeline/ledger/outbox.py` documents the entries.
local function outbox(task, batch, job, attempt)
  redis.call('XADD', OUTBOX, '*', 'task', task, 'batch', batch, 'job', job, 'attempt', attempt)
end

-- Puts a batch in the ready set at the smallest pass there, so a batch that (re)joins
-- takes its fair share from now on: no catching up, no waiting behind the others.
local function join_ready(batch)
  if redis.call('ZSCORE', READY, batch) then return end
  local head = redis.call('ZRANGE', READY, 0, 0, 'WITHSCORES')
  redis.call('ZADD', READY, head[2] or 0, batch)
end

-- The batch's next job id: those put back in line first, then manifest order.
local function next_job_id(bkey)
  if redis.call('HGET', bkey, 'cancelled') == '1' then return false end
  local id = redis.call('LPOP', bkey .. ':requeued')
  if id then return id end
  local cursor = tonumber(redis.call('HGET', bkey, 'cursor') or '0')
  id = redis.call('LINDEX', bkey .. ':jobs', cursor)
  if id then redis.call('HSET', bkey, 'cursor', cursor + 1) end
  return id
end

-- Leases a slot to `jkey` (a queued job) and queues its submit.
local function lease(batch, id, jkey, bkey)
  local attempt = redis.call('HINCRBY', jkey, 'attempt', 1)
  redis.call('HSET', jkey, 'state', 'dispatched', 'updated_at', A.now)
  count_move(bkey, 'queued', 'dispatched')
  redis.call('HSET', LEASES, jkey, attempt)
  redis.call('ZADD', AWAITING, A.now + A.dispatch_late_s, jkey)
  outbox('submit', batch, id, attempt)
end

-- Leases one slot to the next queued job in fair order: the ready batch with the
-- smallest pass, whose pass then grows by 1/priority (stride scheduling: each batch
-- gets slots in proportion to its priority). False when no batch has a queued job.
local function dispatch_one()
  for _ = 1, 1000 do -- ids of jobs no longer queued are skipped, a bounded number
    local head = redis.call('ZRANGE', READY, 0, 0, 'WITHSCORES')
    if #head == 0 then return false end
    local batch, pass = head[1], tonumber(head[2])
    local bkey = batch_key(batch)
    local id = next_job_id(bkey)
    if not id then
      redis.call('ZREM', READY, batch)
    else
      local jkey = job_key(batch, id)
      if redis.call('HGET', jkey, 'state') == 'queued' then
        lease(batch, id, jkey, bkey)
        local weight = tonumber(redis.call('HGET', bkey, 'priority') or '1')
        redis.call('ZADD', READY, pass + 1 / weight, batch)
        return true
      end
    end
  end
  return false
end

-- Fills every free slot, unless the account is paused or cooling down; how many.
local function dispatch()
  if redis.call('EXISTS', P .. 'paused', P .. 'cooldown') > 0 then return 0 end
  local filled = 0
  while redis.call('HLEN', LEASES) < A.slots and dispatch_one() do filled = filled + 1 end
  return filled
end
