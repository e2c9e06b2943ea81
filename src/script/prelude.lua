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

-- route_timeout holds in a script's own coroutines too: the clock's hook
-- goes with the coroutine resumed and comes back to the resumer after
-- (script/watchdog.rs). Errors read as LuaJIT's own: coroutine.wrap adds
-- the position of a Lua caller to a string error.
do
  local create, raw_resume, watch = coroutine.create, coroutine.resume, sip.__watch
  local raise, kind, count, unpack = error, type, select, unpack
  local function back(...)
    watch()
    return ...
  end
  local function resume(co, ...)
    if kind(co) ~= "thread" then return raw_resume(co, ...) end
    watch(co)
    return back(raw_resume(co, ...))
  end
  local function pack(...) return { n = count("#", ...), ... } end
  coroutine.resume = resume
  coroutine.wrap = function(f)
    local co = create(f)
    return function(...)
      local r = pack(resume(co, ...))
      if r[1] then return unpack(r, 2, r.n) end
      if kind(r[2]) == "string" then raise(r[2], 2) end
      raise(r[2], 0)
    end
  end
  sip.__watch = nil
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
