-- Bench a) stateless proxy: the same logic as proxies/kamailio/stateless.cfg
-- and the OpenSIPS anchor: max-forwards check, then forward to the UAS.
config = {
  listen = { "udp:127.0.0.1:5060" },
  children = 2,
  log_level = "error",
  udp_rcvbuf = 4194304,
  modules = { mi_http = false, mi_fifo = false },
}

function route.main()
  if not sip.maxfwd.mf_process_maxfwd_header(10) then
    sip.sl.sl_send_reply(483, "Too Many Hops")
    sip.exit()
  end
  sip.forward("sip:127.0.0.1:5080")
end
