-- Translated from foreach.cfg by `lunasip translate` (see docs/migration.md).

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
  -- walk every value of an AVP
  for i = 0, math.huge do
    local value = sip.pv.get(string.format("$(avp(contacts)[%d])", i))
    if value == nil then break end
    sip.var.ct = value
    sip.xlog("contact $var(ct)\n")
    if sip.var.ct == "sip:stop@x" then
      break
    end
  end
end
