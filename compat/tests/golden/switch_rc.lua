-- Translated from switch_rc.cfg by `lunasip translate` (see docs/migration.md).

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
  local ok, code = sip.registrar.lookup("location")
  sip.pv.rc = code or (ok and 1 or -1)
  if sip.pv.retcode == -1 or sip.pv.retcode == -3 then
    sip.tm.t_reply(404, "Not Found")
    sip.exit()
  elseif sip.pv.retcode == -2 then
    sip.sl.sl_send_reply(405, "Method Not Allowed")
  else
    sip.xlog("found\n")
  end
  if route.check_user() > 0 then
    sip.tm.t_relay()
  end
end

function route.check_user()
  if sip.pv.fU == "alice" then
    return 1
  end
  return -1
end
