-- Soak script (bench/soak.sh fills in the ports): a stateful balancer over
-- a dispatcher set read from MariaDB, with failover to the next box on a
-- 408/5xx, probing, dialog tracking with CDRs written to MariaDB, and one
-- event per call published to RabbitMQ. soak.sh reloads it (SIGHUP),
-- kills and revives a box, restarts MariaDB and RabbitMQ under load.
config = {
  listen = { "udp:127.0.0.1:@PROXY@" },
  children = 2,
  log_level = "warn",
  modules = {
    tm = { fr_timeout = 2, fr_inv_timeout = 10 },
    mi_http = { ip = "127.0.0.1", port = @MI@, token = false },
    mi_fifo = false,
    dispatcher = {
      db_url = "mysql://root@127.0.0.1:@DB@/soak",
      db_retry_interval = 1,
      ds_ping_interval = 1,
      ds_probing_threshold = 1,
    },
    acc = { db_url = "mysql://root@127.0.0.1:@DB@/soak" },
  },
}

function startup_route.main()
  sip.raise_event("E_SOAK_CALL")
  sip.subscribe_event("E_SOAK_CALL", "rabbitmq:127.0.0.1:@AMQP@/exchange=amq.direct?lunasip.soak")
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
  if sip.is_method("INVITE") then
    sip.dialog.create_dialog()
    sip.acc.do_accounting("db", "cdr")
    sip.raise_event("E_SOAK_CALL", { callid = sip.pv.ci })
  end
  sip.rr.record_route()
  if not sip.dispatcher.ds_select_dst(1, 4, "f") then
    sip.sl.sl_send_reply(503, "Service Unavailable")
    sip.exit()
  end
  sip.tm.t_on_failure("next_box")
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end

function failure_route.next_box()
  if sip.tm.t_was_cancelled() then return end
  if sip.tm.t_check_status("(408)|([56][0-9][0-9])") then
    sip.dispatcher.ds_mark_dst("p")
    if sip.dispatcher.ds_next_dst() then
      sip.tm.t_on_failure("next_box")
      sip.tm.t_relay()
    end
  end
end
