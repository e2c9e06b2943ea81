-- stateless.lua with the route watchdog off (`route_timeout = 0`: no
-- instruction-count hook, LuaJIT's compiler on): what the watchdog costs
-- (bench/cg_cost.sh, bench/RESULTS.md "Session 8"). The size caps on
-- incoming messages (sip/limits.rs) have no switch and run in both.
config = {
  listen = { "udp:127.0.0.1:5060" },
  children = 2,
  route_timeout = 0,
  log_level = "error",
  udp_rcvbuf = 4194304,
  modules = { mi_http = false, mi_fifo = false },
}

function route.main()
  if not sip.maxfwd.mf_process_maxfwd_header(10) then
    sip.sl.sl_send_reply(483, "Too Many Hops")
    sip.exit()
  end
  sip.forward("sip:127.0.0.1:5080")
end
