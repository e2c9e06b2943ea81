-- Translated from bitwise.cfg by `lunasip translate` (see docs/migration.md).

-- OpenSIPS's truth of a value: set, and not 0 or "".
local function truthy(v)
  return v ~= nil and v ~= 0 and v ~= ""
end

config = {
  modules = {
    mi_fifo = false, -- the script loads no mi_fifo: no MI FIFO
    mi_http = false, -- the script loads no mi_http: no MI over HTTP
  },
  -- No socket lunasip can use was given: OpenSIPS's default, every
  -- interface on port 5060.
  listen = { "udp:0.0.0.0:5060" },
}

function route.main()
  -- bitwise operators: one precedence, left to right (OpenSIPS cfg.y)
  sip.var.a = sip.bit.band(sip.bit.bor(sip.var.f, 8), 3)
  sip.var.b = sip.bit.bnot(sip.var.f)
  sip.var.c = sip.bit.rshift(sip.bit.lshift(1, sip.var.n), 1)
  sip.var.d = sip.bit.bxor(sip.var.f, 5)
  sip.pv.assign("$var(f)", "^=", 1)
  sip.pv.assign("$var(f)", "%=", 3)
  -- arithmetic operators share one precedence too: this is 9
  sip.var.p = (1 + 2) * 3
  sip.var.q = sip.var.f * (sip.var.a + 1)
  -- so do || and &&
  if (sip.var.a == 1 or sip.var.b == 2) and sip.var.c == 3 then
    sip.xlog("or-and\n")
  end
  if sip.var.a == 1 and sip.var.b == 2 or sip.var.c == 3 then
    sip.xlog("and-or\n")
  end
  -- a computed value in a condition is true when not 0
  if not sip.isflagset(1) and truthy(sip.bit.band(sip.var.f, 4)) then
    sip.xlog("bit 2 set\n")
  end
  if truthy(sip.bit.lshift(sip.var.f, 2)) then
    sip.xlog("shifted\n")
  end
end
