-- Translated from route_types.cfg by `lunasip translate` (see docs/migration.md).

config = {
  modules = {
    mi_fifo = false, -- the script loads no mi_fifo: no MI FIFO
    mi_http = false, -- the script loads no mi_http: no MI over HTTP
  },
  -- No socket lunasip can use was given: OpenSIPS's default, every
  -- interface on port 5060.
  listen = { "udp:0.0.0.0:5060" },
}

function startup_route.main()
  sip.pv.set("$shv(started)", 1)
end

timer_route.cleanup = {
  interval = 60,
  fn = function()
    sip.xlog("L_INFO", "timer\n")
  end,
}

function event_route.E_DISPATCHER_STATUS(ev)
  sip.xlog("L_WARN", "box " .. (ev.address or "<null>") .. " is " .. (ev.status or "<null>") .. "\n")
  sip.var.s = ev.status
end

function local_route.main()
  sip.append_hf("X-Local: 1\r\n")
end

function error_route.main()
  sip.sl.sl_send_reply(400, "Bad Request")
  sip.exit()
end

function branch_route.per_branch()
  sip.xlog("branch $T_branch_idx\n")
end

function onreply_route.main()
  sip.xlog("reply $rs\n")
end

function route.main()
  sip.tm.t_on_branch("per_branch")
  sip.tm.t_relay()
end
