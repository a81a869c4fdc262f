-- Fills every free slot (see `dispatch` in common.lua). No arguments of its own.
-- Returns how many jobs were dispatched.
return dispatch()
