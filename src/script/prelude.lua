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

package.loaded.sip = sip


-- Every route coroutine starts with this (the chunk's value): a protected
-- call that catches what the route raised, exit/drop included, so the
-- coroutine always ends cleanly and the host can reuse it.
return function(f, ...) return protected_call(f, ...) end
