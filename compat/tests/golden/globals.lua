-- Translated from globals.cfg by `lunasip translate` (see docs/migration.md).

-- globals and modules become the config table
config = {
  log_level = 3,
  children = 4,
  listen = { "udp:127.0.0.1:5060", "tcp:127.0.0.1:5060 as 192.0.2.1:5060" },
  alias = { "sip.example.com" },
  -- fork = yes: systemd (or the terminal) runs lunasip in the foreground
  -- mpath = "/usr/lib/opensips/modules/": lunasip's modules are built in
  modules = {
    tm = {
      fr_timeout = 5,
      T1 = 500,
    },
    usrloc = {
      use_domain = true,
    },
    acc = {
      early_media = false,
    },
    mi_fifo = false, -- the script loads no mi_fifo: no MI FIFO
    mi_http = false, -- the script loads no mi_http: no MI over HTTP
  },
}

function route.main()
  sip.exit()
end
