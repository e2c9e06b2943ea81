-- Translated from args.cfg by `lunasip translate` (see docs/migration.md).

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

-- arguments: specs in string parameters, numbers as strings, optional first
function route.main()
  if sip.dispatcher.ds_is_in_list(sip.pv.si, sip.pv.sp, "1") then
    sip.xlog("from the farm\n")
  end
  -- a bare value is true when set and not 0 or ""
  if truthy(sip.pv.get("$(rU{s.len})")) and truthy(sip.var.flag) then
    sip.xlog("L_INFO", "user $rU\n")
  end
  sip.registrar.remove("location", sip.pv.fmt("sip:$rU@$rd"))
  sip.sl.sl_send_reply(404, "Not Here")
end
