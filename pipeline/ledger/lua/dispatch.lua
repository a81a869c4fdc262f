-- Fills the free slots (see `dispatch` in common.lua) of one pool, `account`, or of
-- every configured pool when it is null. Returns how many jobs were dispatched.
if A.account ~= cjson.null then return dispatch(A.account) end
local picked = 0
for pool in pairs(A.pools) do picked = picked + dispatch(pool) end
return picked
