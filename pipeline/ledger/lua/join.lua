-- Puts a batch in line for the dispatcher of each pool it has jobs in (once its jobs are
-- recorded) and fills their free slots. Arguments: batch, accounts (the pools).
-- Returns how many jobs were dispatched.
local picked = 0
for _, pool in ipairs(A.accounts) do
  join_ready(pool, A.batch)
  picked = picked + dispatch(pool)
end
return picked
