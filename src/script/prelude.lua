-- lunasip prelude: runs in every worker's Lua state before the user script.

local protected_call = pcall

-- Route tables (OpenSIPS route blocks). Scripts add functions to them.
route, branch_route, failure_route, onreply_route = {}, {}, {}, {}
local_route, startup_route, timer_route, event_route, error_route = {}, {}, {}, {}, {}

-- sip.exit() and sip.drop() unwind the whole invocation by raising an
-- error; a pcall in the script must not swallow that, so pcall and xpcall
-- re-raise while an unwind is in progress.
do
  local raw_pcall, raw_xpcall, unwinding, rethrow = pcall, xpcall, sip.__unwinding, error
  local function pass(ok, ...)
    if not ok and unwinding() then rethrow((...), 0) end
    return ok, ...
  end
  pcall = function(f, ...) return pass(raw_pcall(f, ...)) end
  xpcall = function(f, handler, ...)
    local function h(e)
      if unwinding() then return e end
      return handler(e)
    end
    return pass(raw_xpcall(f, h, ...))
  end
end

-- sip.exit() and sip.drop() mark the unwinding, then raise from Lua: an
-- error raised by a Rust function costs a traceback each time.
do
  local mark, raise = sip.__unwind, error
  sip.exit = function() mark(false); raise("sip.exit: unwinding", 0) end
  sip.drop = function() mark(true); raise("sip.drop: unwinding", 0) end
end

package.loaded.sip = sip


-- Every route coroutine starts with this (the chunk's value): a protected
-- call that catches what the route raised, exit/drop included, so the
-- coroutine always ends cleanly and the host can reuse it.
-- Not a tail call: a tail-called pcall has no name, and a traceback
-- would search every global table for one.
return function(f, ...)
  local ok, err = protected_call(f, ...)
  return ok, err
end
