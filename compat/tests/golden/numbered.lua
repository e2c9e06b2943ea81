-- Translated from numbered.cfg by `lunasip translate` (see docs/migration.md).

config = {
  modules = {
    mi_fifo = false, -- the script loads no mi_fifo: no MI FIFO
    mi_http = false, -- the script loads no mi_http: no MI over HTTP
  },
  -- No socket lunasip can use was given: OpenSIPS's default, every
  -- interface on port 5060.
  listen = { "udp:0.0.0.0:5060" },
}

-- OpenSIPS 1.x numbered routes
function route.main()
  sip.tm.t_on_failure("r1")
  sip.tm.t_on_reply("r2")
  route.r1()
end

-- OpenSIPS route[1]
function route.r1()
  sip.tm.t_relay()
end

-- OpenSIPS failure_route[1]
function failure_route.r1()
  if sip.tm.t_was_cancelled() then
    sip.exit()
  end
  if sip.tm.t_check_status("486|408") then
    return
  end
end

-- OpenSIPS onreply_route[2]
function onreply_route.r2()
  if sip.re_match(sip.pv.rs, "18[03]", "i") then
    sip.drop()
  end
end
