-- Translated from statements.cfg by `lunasip translate` (see docs/migration.md).

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
  -- if / else if / else
  if sip.is_method("INVITE") and not sip.has_totag() then
    sip.rr.record_route()
  elseif sip.is_method("BYE") then
    sip.xlog("L_INFO", "bye from $si\n")
  else
    sip.drop()
  end
  sip.var.i = 0
  while sip.var.i < 3 do
    sip.var.i = sip.var.i + 1
  end
  sip.var.uri = "sip:" .. sip.pv.rU .. "@example.com"
  sip.pv.assign("$avp(list)", ":=", sip.var.uri)
  sip.pv.du = nil
  if sip.re_match(sip.pv.ru, "^sip:[0-9]+@", "i") or sip.pv.rU == nil then
    return -1
  end
  if sip.tr(sip.pv.si, "{ip.matches,10.0.0.0/8}") == 1 and sip.is_myself(sip.pv.ru) then
    sip.exit()
  end
  route.relay()
end

function route.relay()
  if not sip.tm.t_relay() then
    sip.sl.sl_reply_error()
  end
  sip.exit()
end
