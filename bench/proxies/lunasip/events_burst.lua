-- Bench: event throughput to the local RabbitMQ (bench/events.sh). Each
-- request raises as many E_BENCH_BURST events as its R-URI user says
-- (sip:1000@…); a rabbitmq: subscriber publishes them off the workers.
config = {
  listen = { "udp:127.0.0.1:5060" },
  children = 2,
  log_level = "error",
  modules = {
    mi_http = { ip = "127.0.0.1", port = 8899, token = false },
    mi_fifo = false,
  },
}

function startup_route.main()
  sip.raise_event("E_BENCH_BURST")
  sip.subscribe_event("E_BENCH_BURST", "rabbitmq:127.0.0.1:5672/exchange=amq.direct?lunasip.burst")
end

function route.main()
  local n = tonumber(sip.pv.rU) or 0
  local ci = sip.pv.ci
  for i = 1, n do
    sip.raise_event("E_BENCH_BURST", { callid = ci, n = i })
  end
  sip.sl.sl_send_reply(200, "OK")
end
