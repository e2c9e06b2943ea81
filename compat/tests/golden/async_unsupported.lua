-- Translated from async_unsupported.cfg by `lunasip translate` (see docs/migration.md).

-- What lunasip cannot do yet raises this error when reached;
-- `lunasip translate` lists each call site with its line.
local function unsupported(what)
  error("not supported by lunasip: " .. what, 2)
end

config = {
  modules = {
    -- loadmodule "rest_client.so": not in lunasip
    mi_fifo = false, -- the script loads no mi_fifo: no MI FIFO
    mi_http = false, -- the script loads no mi_http: no MI over HTTP
  },
  -- No socket lunasip can use was given: OpenSIPS's default, every
  -- interface on port 5060.
  listen = { "udp:0.0.0.0:5060" },
}

function route.main()
  -- a call lunasip lacks stays, and raises when reached
  unsupported("rtpengine: rtpengine_offer()")
  -- OpenSIPS: async(usleep(1000), resume)
  local ok, code = sip.cfgutils.usleep(1000)
  sip.pv.rc = code or (ok and 1 or -1)
  route.resume()
  sip.exit()
end

function route.resume()
  if sip.pv.rc < 0 then
    sip.exit()
  end
  sip.tm.t_relay()
end
