-- Bench b) stateful proxy (stateful.lua) raising one event per INVITE for
-- a RabbitMQ subscriber (the local broker, guest/guest, amq.direct,
-- routing key lunasip.bench): what publishing costs per call.
config = {
  listen = { "udp:127.0.0.1:5060" },
  children = 2,
  log_level = "error",
  udp_rcvbuf = 4194304,
  modules = { mi_http = false, mi_fifo = false },
}

function startup_route.main()
  sip.raise_event("E_BENCH_CALL")
  sip.subscribe_event("E_BENCH_CALL", "rabbitmq:127.0.0.1:5672/exchange=amq.direct?lunasip.bench")
end

function route.main()
  if not sip.maxfwd.mf_process_maxfwd_header(10) then
    sip.sl.sl_send_reply(483, "Too Many Hops")
    sip.exit()
  end
  if sip.has_totag() then
    if sip.rr.loose_route() then
      sip.tm.t_relay()
      sip.exit()
    end
    if sip.is_method("ACK") then
      if sip.tm.t_check_trans() then sip.tm.t_relay() end
      sip.exit()
    end
    sip.sl.sl_send_reply(404, "Not here")
    sip.exit()
  end
  if sip.is_method("CANCEL") then
    if sip.tm.t_check_trans() then sip.tm.t_relay() end
    sip.exit()
  end
  sip.tm.t_check_trans()
  if sip.is_method("INVITE|SUBSCRIBE") then
    sip.rr.record_route()
    sip.raise_event("E_BENCH_CALL", { callid = sip.pv.ci, from = sip.pv.fu, to = sip.pv.tu })
  end
  sip.pv.du = "sip:127.0.0.1:5080"
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end
