-- lunasip default script: a stateless proxy.
--
-- It answers OPTIONS addressed to the proxy itself, refuses requests that
-- have travelled too far, record-routes, and forwards everything else:
-- to config.upstream when set, otherwise to where the request points.
-- Installed as /etc/lunasip/lunasip.lua; edit it and `systemctl reload lunasip`.

config = {
  -- Where to listen: "proto:address:port"; add "as host:port" to advertise
  -- another address in Via and Record-Route (behind NAT).
  listen = { "udp:0.0.0.0:5060", "tcp:0.0.0.0:5060" },
  -- Worker threads; defaults to the number of cores.
  -- children = 4,
  log_level = "info",
  -- Send every request here instead of to its R-URI, e.g. "sip:10.0.0.10:5060".
  upstream = nil,
}

function route.main()
  -- RFC 3261 §16.3: never forward a request whose Max-Forwards ran out.
  if not sip.maxfwd.mf_process_maxfwd_header(10) then
    sip.sl.sl_send_reply(483, "Too Many Hops")
    sip.exit()
  end

  -- In-dialog requests follow the route set the dialog recorded.
  if sip.has_totag() then
    sip.rr.loose_route()
    route.relay()
    sip.exit()
  end

  -- OPTIONS to the proxy itself (no user part): a keep-alive or a probe.
  if sip.is_method("OPTIONS") and sip.pv.rU == nil and not config.upstream then
    sip.sl.sl_send_reply(200, "OK")
    sip.exit()
  end

  -- Stay in the path of dialogs so in-dialog requests come back here.
  if sip.is_method("INVITE|SUBSCRIBE") then
    sip.rr.record_route()
  end

  route.relay()
end

function route.relay()
  local ok
  if config.upstream and not sip.has_totag() then
    ok = sip.forward(config.upstream)
  else
    ok = sip.forward()
  end
  if not ok then
    sip.sl.sl_reply_error()
  end
end
