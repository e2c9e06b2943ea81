-- Translated from modparam_lists.cfg by `lunasip translate` (see docs/migration.md).

-- modparams OpenSIPS repeats, one value a line, become one Lua list
config = {
  listen = { "udp:127.0.0.1:5060" },
  modules = {
    statistics = {
      stat_series_profile = { "avg: algorithm=average", "asr: algorithm=percentage window=3600 slots=6", "acc" },
    },
    tm = {
      tw_append = "vm: subject=$hdr(Subject); $rb",
    },
    permissions = {
      db_url = "mysql://root@127.0.0.1/test",
      partition = { "carriers: table_name = carrier_address", "customers: db_url = mysql://root@127.0.0.1/crm; table_name = address" },
    },
    mi_fifo = false, -- the script loads no mi_fifo: no MI FIFO
    mi_http = false, -- the script loads no mi_http: no MI over HTTP
  },
}

function route.main()
  sip.update_stat_series("asr", "ASR_1h", 1)
  -- OpenSIPS 3.x: an optional parameter left out is written as nothing
  if sip.permissions.check_source_address(1, nil, nil, "carriers") then
    sip.exit()
  end
  sip.exit()
end
