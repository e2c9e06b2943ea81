-- Memory bench for dialogs (memory.sh -D): dialog_acc.lua (create_dialog
-- + do_accounting("db", "cdr") into lunasip_bench.acc) with the MI over
-- HTTP on 127.0.0.1:8888, so memory.sh can read dialog:active_dialogs.
config = {
  listen = { "udp:127.0.0.1:5060" },
  children = 2,
  log_level = "error",
  udp_rcvbuf = 4194304,
  modules = {
    mi_http = { ip = "127.0.0.1", port = 8888, root = "mi" },
    mi_fifo = false,
    acc = { db_url = "mysql://root@127.0.0.1:3306/lunasip_bench" },
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
    sip.dialog.create_dialog()
    sip.acc.do_accounting("db", "cdr")
    sip.rr.record_route()
  end
  sip.pv.du = "sip:127.0.0.1:5080"
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end
