-- Translated from blacklists.cfg by `lunasip translate` (see docs/migration.md).

-- dst_blacklist (OpenSIPS 3.4 cfg.y blst_def) becomes config.blacklists
config = {
  listen = { "udp:127.0.0.1:5060" },
  -- the gateways we never send to
  blacklists = {
    gw = { "(udp, 192.0.2.10, 5060, \"\")", "(tcp, 198.51.100.0/24, 0, \"*X-Bad*\")", "!(any, 10.0.0.0/8)" },
    learned = { flags = { "expire", "default" } },
    single = { "203.0.113.7" },
  },
  -- dst_blacklist = bad/sometimes:{ 203.0.113.8 }: unknown blacklist flag 'sometimes'
  modules = {
    mi_fifo = false, -- the script loads no mi_fifo: no MI FIFO
    mi_http = false, -- the script loads no mi_http: no MI over HTTP
  },
}

function route.main()
  sip.exit()
end
