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

-- The route coroutines (the host's, keys only: a weak table shared with
-- the call wrappers of script/calls.rs, the chunk's argument).
local route_threads = ...

-- sip.exit() and sip.drop() mark the unwinding, then end the route. In a
-- route coroutine of the host, where it can yield, it yields: the host
-- sees the mark and ends the route there (the coroutine is not resumed).
-- Elsewhere (a route run from Rust, a script's own coroutine) they raise
-- from Lua: an error raised by a Rust function costs a traceback each
-- time, and any error costs LuaJIT an unwind through the C frames
-- (~14,000 instructions; bench/RESULTS.md, "Session 8").
do
  local mark, raise = sip.__unwind, error
  local running, yield, yieldable = coroutine.running, coroutine.yield, coroutine.isyieldable
  local function in_route()
    local co = running()
    return co ~= nil and route_threads[co] ~= nil and yieldable ~= nil and yieldable()
  end
  sip.exit = function()
    mark(false)
    if in_route() then yield() end
    raise("sip.exit: unwinding", 0)
  end
  sip.drop = function()
    mark(true)
    if in_route() then yield() end
    raise("sip.drop: unwinding", 0)
  end
end

package.loaded.sip = sip


-- Every route coroutine starts with this (the chunk's value): a protected
-- call that catches what the route raised, exit/drop included, so the
-- coroutine always ends cleanly and the host can reuse it.
-- Not a tail call: a tail-called pcall has no name, and a traceback
-- would search every global table for one.
local running = coroutine.running
return function(f, ...)
  route_threads[running()] = true
  local ok, err = protected_call(f, ...)
  return ok, err
end
