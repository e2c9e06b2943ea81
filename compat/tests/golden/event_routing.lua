-- Translated from event_routing.cfg by `lunasip translate` (see docs/migration.md).

config = {
  modules = {
    mi_fifo = false, -- the script loads no mi_fifo: no MI FIFO
    mi_http = false, -- the script loads no mi_http: no MI over HTTP
  },
  -- No socket lunasip can use was given: OpenSIPS's default, every
  -- interface on port 5060.
  listen = { "udp:0.0.0.0:5060" },
}

-- event_routing README, "Push Notification" and wait_for_event
function route.main()
  if sip.pv.rU == "wait" then
    sip.avp.filter = "aor=" .. sip.pv.rU .. "@" .. sip.pv.rd
    -- OpenSIPS: async(wait_for_event("E_UL_AOR_INSERT", $avp(filter), 40), resume_call)
    local ok, code = sip.event_routing.wait_for_event("E_UL_AOR_INSERT", "$avp(filter)", 40)
    sip.pv.rc = code or (ok and 1 or -1)
    route.resume_call()
    sip.exit()
  end
  sip.tm.t_newtran()
  sip.tm.t_wait_for_new_branches()
  sip.avp.filter = "aor=" .. sip.pv.rU
  sip.event_routing.notify_on_event("E_UL_CONTACT_INSERT", "$avp(filter)", "fork_call", 20)
  if sip.registrar.lookup("location") then
    sip.tm.t_relay()
  end
  sip.exit()
end

function route.fork_call()
  sip.xlog("user $avp(aor) registered a new contact $avp(uri), injecting\n")
  sip.tm.t_inject_branches("event")
end

function route.resume_call()
  sip.xlog("user $avp(aor) is now registered\n")
  sip.registrar.lookup("location")
  sip.tm.t_relay()
end
