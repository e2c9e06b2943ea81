-- Translated from launch.cfg by `lunasip translate` (see docs/migration.md).

config = {
  modules = {
    mi_fifo = false, -- the script loads no mi_fifo: no MI FIFO
    mi_http = false, -- the script loads no mi_http: no MI over HTTP
  },
  -- No socket lunasip can use was given: OpenSIPS's default, every
  -- interface on port 5060.
  listen = { "udp:0.0.0.0:5060" },
}

function route.main()
  -- launch: the function runs detached, this route goes on
  -- OpenSIPS: launch(usleep(1000), report, "job-1")
  sip.launch(function()
    local ok, code = sip.cfgutils.usleep(1000)
    sip.pv.rc = code or (ok and 1 or -1)
    route.report("job-1")
  end)
  -- OpenSIPS: launch(usleep(10))
  sip.launch(function() sip.cfgutils.usleep(10) end) -- no report route
  sip.sl.sl_send_reply(200, "OK")
end

function route.report(...)
  local param = { ... }
  sip.xlog("report " .. (param[1] or "<null>") .. ": rc=$rc\n")
end
