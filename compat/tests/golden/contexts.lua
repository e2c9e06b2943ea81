-- Translated from contexts.cfg by `lunasip translate` (see docs/migration.md).

-- OpenSIPS's truth of a value: set, and not 0 or "".
local function truthy(v)
  return v ~= nil and v ~= 0 and v ~= ""
end

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
  sip.tm.t_on_reply("rpl")
  sip.tm.t_on_failure("fail")
  sip.tm.t_relay()
end

function onreply_route.rpl()
  -- the transaction's request, read from a reply route
  sip.xlog("$rs for $(<request>rm) from $(<request>si):$(<request>sp)\n")
  sip.var.ruser = sip.pv.get("$(<request>ru{uri.user})")
end

function failure_route.fail()
  -- the winning reply, read from a failure route
  if truthy(sip.pv.get("$(<reply>hdr(X-Redirect-Server))")) then
    sip.pv.du = sip.pv.get("$(<reply>hdr(X-Redirect-Server))")
    sip.tm.t_relay()
  end
end
