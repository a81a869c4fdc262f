-- Shared by every ledger script (`pipeline/ledger/scripts.py` puts it in front of each):
-- the named arguments, the key schema, the outbox, slot pools and the dispatcher.
--
-- A script takes one argument: a JSON object of named arguments. These come with every
-- call; each script documents its own.
--   prefix            the ledger's key prefix ("fp:"); see pipeline/ledger/keys.py
--   now               the caller's clock, epoch seconds
--   day               the caller's UTC date (YYYYMMDD), for each account's spend a day
--   pools             account name -> {slots = n, budget = credits a day or null}
--   default_pool      the account of a job recorded without one
--   dispatch_late_s   how long a dispatched job may hold a slot before its POST begins
--
-- Each provider account is a slot pool of its own: its leases, its dispatched jobs, the
-- jobs waiting for its slots, its ready batches (fairness holds inside each pool), its
-- pause and cool-down. A batch has a line of jobs per pool it uses. A pool that is not
-- configured (its account was removed) has no slots and dispatches nothing.
local A = cjson.decode(ARGV[1])
local P = A.prefix

local AWAITING = P .. 'awaiting'
local OUTBOX = P .. 'outbox'
local IN_FLIGHT = {submitting = true, awaiting_result = true, collecting = true}
-- A woken submit task reads its wake-up at once; one nobody read is dropped after this.
local GO_TTL_S = 600

local function job_key(batch, job) return P .. 'job:' .. batch .. ':' .. job end
local function batch_key(batch) return P .. 'batch:' .. batch end
local function go_key(jkey, attempt) return P .. 'go:' .. string.sub(jkey, #P + 5) .. ':' .. attempt end
local function pool_key(pool, name) return P .. 'pool:' .. pool .. ':' .. name end
local function line_key(bkey, pool) return bkey .. ':line:' .. pool end
local function requeued_key(bkey, pool) return bkey .. ':requeued:' .. pool end

-- The account (slot pool) a job runs on.
local function pool_of(jkey)
  local pool = redis.call('HGET', jkey, 'account')
  if pool then return pool end
  return A.default_pool
end

local function pool_slots(pool)
  local config = A.pools[pool]
  if config then return config.slots end
  return 0
end

-- Moves one job from `from` to `to` in its batch's counters.
local function count_move(bkey, from, to)
  redis.call('HINCRBY', bkey, 'n:' .. from, -1)
  redis.call('HINCRBY', bkey, 'n:' .. to, 1)
end

-- Queues work for a worker; `pipeline/ledger/outbox.py` documents the entries.
local function outbox(task, batch, job, attempt)
  redis.call('XADD', OUTBOX, '*', 'task', task, 'batch', batch, 'job', job, 'attempt', attempt)
end

-- Whether the pool dispatches nothing now: paused, cooling down, not configured, or
-- at its budget for the day.
local function stopped(pool)
  if redis.call('EXISTS', pool_key(pool, 'paused'), pool_key(pool, 'cooldown')) > 0 then
    return true
  end
  local config = A.pools[pool]
  if not config then return true end
  if config.budget == nil or config.budget == cjson.null then return false end
  local spent = tonumber(redis.call('HGET', pool_key(pool, 'spend'), A.day) or '0')
  return spent >= config.budget
end

local function slot_free(pool)
  return redis.call('HLEN', pool_key(pool, 'leases')) < pool_slots(pool)
end

-- Gives a free slot to a dispatched job; its submit task's POST must begin within the
-- dispatch deadline, or the reconcile sweep puts it back in line and frees the slot.
local function lease(pool, jkey, attempt)
  redis.call('HSET', pool_key(pool, 'leases'), jkey, attempt)
  redis.call('SREM', pool_key(pool, 'picked'), jkey)
  redis.call('ZADD', AWAITING, A.now + A.dispatch_late_s, jkey)
end

local function holds_slot(pool, jkey, attempt)
  return redis.call('HGET', pool_key(pool, 'leases'), jkey) == tostring(attempt)
end

-- Whether `attempt` of the job is dispatched (its POST not begun).
local function dispatched(jkey, attempt)
  local fields = redis.call('HMGET', jkey, 'state', 'attempt')
  return fields[1] == 'dispatched' and tonumber(fields[2]) == tonumber(attempt)
end

-- Hands the pool's free slots to the jobs waiting for one, oldest first, and wakes their
-- submit tasks. Entries of jobs that moved on meanwhile are dropped.
local function hand_over(pool)
  while slot_free(pool) do
    local entry = redis.call('LPOP', pool_key(pool, 'waiting'))
    if not entry then return end
    local attempt, jkey = string.match(entry, '^(%d+)|(.*)$')
    if dispatched(jkey, attempt) and not holds_slot(pool, jkey, attempt) then
      lease(pool, jkey, attempt)
      local go = go_key(jkey, attempt)
      redis.call('LPUSH', go, '1')
      redis.call('EXPIRE', go, GO_TTL_S)
    end
  end
end

-- Puts a batch in the pool's ready set at the smallest pass there, so a batch that
-- (re)joins takes its fair share from now on: no catching up, no waiting behind the others.
local function join_ready(pool, batch)
  local ready = pool_key(pool, 'ready')
  if redis.call('ZSCORE', ready, batch) then return end
  local head = redis.call('ZRANGE', ready, 0, 0, 'WITHSCORES')
  redis.call('ZADD', ready, head[2] or 0, batch)
end

-- The batch's next job id in the pool: those put back in line first, then manifest order.
local function next_job_id(pool, bkey)
  if redis.call('HGET', bkey, 'cancelled') == '1' then return false end
  local id = redis.call('LPOP', requeued_key(bkey, pool))
  if id then return id end
  local cursor_field = 'cursor:' .. pool
  local cursor = tonumber(redis.call('HGET', bkey, cursor_field) or '0')
  id = redis.call('LINDEX', line_key(bkey, pool), cursor)
  if id then redis.call('HSET', bkey, cursor_field, cursor + 1) end
  return id
end

-- Dispatches a queued job: a new attempt, handed to a submit task (through the outbox)
-- that prepares its request and then takes a slot.
local function pick(pool, batch, id, jkey, bkey)
  local attempt = redis.call('HINCRBY', jkey, 'attempt', 1)
  redis.call('HSET', jkey, 'state', 'dispatched', 'updated_at', A.now)
  count_move(bkey, 'queued', 'dispatched')
  redis.call('SADD', pool_key(pool, 'picked'), jkey)
  redis.call('ZADD', AWAITING, A.now + A.dispatch_late_s, jkey)
  outbox('submit', batch, id, attempt)
end

-- Dispatches the pool's next queued job in fair order: the ready batch with the smallest
-- pass, whose pass then grows by 1/priority (stride scheduling: each batch gets jobs in
-- proportion to its priority). False when no batch has a queued job in the pool.
local function pick_next(pool)
  local ready = pool_key(pool, 'ready')
  for _ = 1, 1000 do -- ids of jobs no longer queued are skipped, a bounded number
    local head = redis.call('ZRANGE', ready, 0, 0, 'WITHSCORES')
    if #head == 0 then return false end
    local batch, pass = head[1], tonumber(head[2])
    local bkey = batch_key(batch)
    local id = next_job_id(pool, bkey)
    if not id then
      redis.call('ZREM', ready, batch)
    else
      local jkey = job_key(batch, id)
      if redis.call('HGET', jkey, 'state') == 'queued' then
        pick(pool, batch, id, jkey, bkey)
        local weight = tonumber(redis.call('HGET', bkey, 'priority') or '1')
        redis.call('ZADD', ready, pass + 1 / weight, batch)
        return true
      end
    end
  end
  return false
end

-- How many dispatched jobs should be without a slot: one for each free slot; once
-- every slot is in use, a whole account's worth, prepared ahead for the next ones.
local function wanted(pool)
  local free = pool_slots(pool) - redis.call('HLEN', pool_key(pool, 'leases'))
  if free > 0 then return free end
  return pool_slots(pool)
end

-- Hands the pool's free slots to its waiting jobs, then dispatches its queued jobs until
-- `wanted` are dispatched; nothing while the pool is stopped. Returns how many jobs it
-- dispatched.
local function dispatch(pool)
  if stopped(pool) then return 0 end
  hand_over(pool)
  local picked_key = pool_key(pool, 'picked')
  local picked = 0
  while redis.call('SCARD', picked_key) < wanted(pool) and pick_next(pool) do
    picked = picked + 1
  end
  return picked
end
