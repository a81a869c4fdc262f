-- Shared by every ledger script (`pipeline/ledger/scripts.py` puts it in front of each):
-- the named arguments, the key schema, the outbox, slot leases and the dispatcher.
--
-- A script takes one argument: a JSON object of named arguments. These come with every
-- call; each script documents its own.
--   prefix            the ledger's key prefix ("fp:"); see pipeline/ledger/keys.py
--   now               the caller's clock, epoch seconds
--   slots             the provider account's slot count
--   dispatch_late_s   how long a dispatched job may hold a slot before its POST begins
local A = cjson.decode(ARGV[1])
local P = A.prefix

local LEASES = P .. 'leases'
local PICKED = P .. 'picked'
local WAITING = P .. 'waiting'
local READY = P .. 'ready'
local AWAITING = P .. 'awaiting'
local OUTBOX = P .. 'outbox'
local IN_FLIGHT = {submitting = true, awaiting_result = true, collecting = true}
-- A woken submit task reads its wake-up at once; one nobody read is dropped after this.
local GO_TTL_S = 600

local function job_key(batch, job) return P .. 'job:' .. batch .. ':' .. job end
local function batch_key(batch) return P .. 'batch:' .. batch end
local function go_key(jkey, attempt) return P .. 'go:' .. string.sub(jkey, #P + 5) .. ':' .. attempt end

-- Moves one job from `from` to `to` in its batch's counters.
local function count_move(bkey, from, to)
  redis.call('HINCRBY', bkey, 'n:' .. from, -1)
  redis.call('HINCRBY', bkey, 'n:' .. to, 1)
end

-- Queues work for a worker; `pipeline/ledger/outbox.py` documents the entries.
local function outbox(task, batch, job, attempt)
  redis.call('XADD', OUTBOX, '*', 'task', task, 'batch', batch, 'job', job, 'attempt', attempt)
end

local function stopped()
  return redis.call('EXISTS', P .. 'paused', P .. 'cooldown') > 0
end

local function slot_free() return redis.call('HLEN', LEASES) < A.slots end

-- Gives a free slot to a dispatched job; its submit task's POST must begin within the
-- dispatch deadline, or the reconcile sweep puts it back in line and frees the slot.
local function lease(jkey, attempt)
  redis.call('HSET', LEASES, jkey, attempt)
  redis.call('SREM', PICKED, jkey)
  redis.call('ZADD', AWAITING, A.now + A.dispatch_late_s, jkey)
end

local function holds_slot(jkey, attempt)
  return redis.call('HGET', LEASES, jkey) == tostring(attempt)
end

-- Whether `attempt` of the job is dispatched (its POST not begun).
local function dispatched(jkey, attempt)
  local fields = redis.call('HMGET', jkey, 'state', 'attempt')
  return fields[1] == 'dispatched' and tonumber(fields[2]) == tonumber(attempt)
end

-- Hands free slots to the jobs waiting for one, oldest first, and wakes their submit
-- tasks. Entries of jobs that moved on meanwhile are dropped.
local function hand_over()
  while slot_free() do
    local entry = redis.call('LPOP', WAITING)
    if not entry then return end
    local attempt, jkey = string.match(entry, '^(%d+)|(.*)$')
    if dispatched(jkey, attempt) and not holds_slot(jkey, attempt) then
      lease(jkey, attempt)
      local go = go_key(jkey, attempt)
      redis.call('LPUSH', go, '1')
      redis.call('EXPIRE', go, GO_TTL_S)
    end
  end
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

-- Dispatches a queued job: a new attempt, handed to a submit task (through the outbox)
-- that prepares its request and then takes a slot.
local function pick(batch, id, jkey, bkey)
  local attempt = redis.call('HINCRBY', jkey, 'attempt', 1)
  redis.call('HSET', jkey, 'state', 'dispatched', 'updated_at', A.now)
  count_move(bkey, 'queued', 'dispatched')
  redis.call('SADD', PICKED, jkey)
  redis.call('ZADD', AWAITING, A.now + A.dispatch_late_s, jkey)
  outbox('submit', batch, id, attempt)
end

-- Dispatches the next queued job in fair order: the ready batch with the smallest pass,
-- whose pass then grows by 1/priority (stride scheduling: each batch gets jobs in
-- proportion to its priority). False when no batch has a queued job.
local function pick_next()
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
        pick(batch, id, jkey, bkey)
        local weight = tonumber(redis.call('HGET', bkey, 'priority') or '1')
        redis.call('ZADD', READY, pass + 1 / weight, batch)
        return true
      end
    end
  end
  return false
end

-- How many dispatched jobs should be without a slot: one for each free slot; once
-- every slot is in use, a whole account's worth, prepared ahead for the next ones.
local function wanted()
  local free = A.slots - redis.call('HLEN', LEASES)
  if free > 0 then return free end
  return A.slots
end

-- Hands free slots to waiting jobs, then dispatches queued jobs until `wanted` are
-- dispatched; nothing while the account is paused or cooling down. Returns how many
-- jobs it dispatched.
local function dispatch()
  if stopped() then return 0 end
  hand_over()
  local picked = 0
  while redis.call('SCARD', PICKED) < wanted() and pick_next() do picked = picked + 1 end
  return picked
end
