-- Bench c) dispatcher: stateful.lua with the fixed $du replaced by
-- ds_select_dst(1, 4) (round-robin) over a set of two destinations. The
-- harness runs one UAS (127.0.0.1:5080), so the set names it twice; the
-- `;x=2` URI parameter only makes the two entries distinct ($du is not
-- written into the message). Same logic as proxies/kamailio/dispatcher.cfg.
config = {
  listen = { "udp:127.0.0.1:5060" },
  children = 2,
  log_level = "error",
  udp_rcvbuf = 4194304,
  modules = {
    mi_http = false,
    mi_fifo = false,
    dispatcher = {
      sets = {
        [1] = { "sip:127.0.0.1:5080", "sip:127.0.0.1:5080;x=2" },
      },
    },
  },
}

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
  end
  if not sip.dispatcher.ds_select_dst(1, 4) then
    sip.sl.sl_send_reply(503, "Service Unavailable")
    sip.exit()
  end
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end
