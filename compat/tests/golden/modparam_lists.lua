-- Translated from modparam_lists.cfg by `lunasip translate` (see docs/migration.md).

-- permissions' partition lines add up (one per partition); others replace
config = {
  modules = {
    permissions = {
      db_url = "mysql://root@127.0.0.1/test",
      partition = { "carriers: table_name = carrier_address", "customers: db_url = mysql://root@127.0.0.1/crm; table_name = address" },
      -- the second partition
      -- modparam("permissions", "partition", …): added to partition above
    },
    mi_fifo = false, -- the script loads no mi_fifo: no MI FIFO
    mi_http = false, -- the script loads no mi_http: no MI over HTTP
  },
  -- No socket lunasip can use was given: OpenSIPS's default, every
  -- interface on port 5060.
  listen = { "udp:0.0.0.0:5060" },
}

function route.main()
  if sip.permissions.check_source_address(1, nil, nil, "carriers") then
    sip.exit()
  end
  sip.drop()
end
