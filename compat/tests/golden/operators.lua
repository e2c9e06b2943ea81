-- Translated from operators.cfg by `lunasip translate` (see docs/migration.md).

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
  -- assignment forms and arithmetic
  sip.var.n = 10
  sip.pv.assign("$var(n)", "+=", 5)
  sip.pv.assign("$var(n)", "-=", 1)
  sip.pv.assign("$var(n)", "*=", 2)
  sip.pv.assign("$var(n)", "/=", 7)
  sip.pv.assign("$var(f)", "|=", 4)
  sip.pv.assign("$var(f)", "&=", 6)
  sip.pv.assign("$avp(a)", ":=", "only")
  sip.var.m = sip.bit.mod(sip.var.n * 3 + 1, 5)
  sip.var.s = "n=" .. sip.var.n
  -- comparisons, !~ and NULL
  if sip.var.n >= 2 and sip.var.n ~= 3 and not sip.re_match(sip.pv.ua, "friendly-scanner", "i") and sip.avp.a ~= nil then
    sip.xlog("ok\n")
  end
  -- bitwise operators go through sip.bit (Lua 5.1 has none)
  if truthy(sip.bit.band(sip.var.f, 4)) then
    sip.xlog("bit\n")
  end
end
