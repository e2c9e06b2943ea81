-- Translated from include.cfg by `lunasip translate` (see docs/migration.md).

config = {
  modules = {
    mi_fifo = false, -- the script loads no mi_fifo: no MI FIFO
    mi_http = false, -- the script loads no mi_http: no MI over HTTP
  },
  -- No socket lunasip can use was given: OpenSIPS's default, every
  -- interface on port 5060.
  listen = { "udp:0.0.0.0:5060" },
}

-- include_file pulls route files in where it stands
-- ---- include_part.inc ----
function route.from_include()
  -- this route lives in an included file
  sip.tm.t_relay()
end

function route.main()
  route.from_include()
end
