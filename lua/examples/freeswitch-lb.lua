-- lunasip example: a load balancer in front of a FreeSWITCH (or Asterisk)
-- farm, the classic OpenSIPS dispatcher deployment.
--
--   callers / carriers ──► lunasip ──► FreeSWITCH 1..n (dispatcher set 1)
--                              ◄──────  calls the boxes send out
--
-- * New calls are spread over set 1 by weighted round robin; REGISTERs are
--   hashed on the user, so a phone always lands on the same box.
-- * Every box gets an OPTIONS every 10 s; two failures in a row take it
--   out, one 200 brings it back (ds_probing_mode 1).
-- * A box that fails a call (timeout or 5xx) is marked for probing and the
--   call moves on to the next box; a busy callee (486) is not a box failure.
-- * Requests the boxes send (calls out to carriers) are relayed by their
--   R-URI, record-routed so the dialog stays on this proxy.
--
-- Check it with `lunasip check -c freeswitch-lb.lua`, run it with
-- `lunasip run -c freeswitch-lb.lua`; `lunasip mi ds_list` shows the farm.

config = {
  listen = { "udp:0.0.0.0:5060", "tcp:0.0.0.0:5060" },
  log_level = "info",
  modules = {
    tm = { fr_timeout = 5, fr_inv_timeout = 30 },
    dispatcher = {
      -- The farm. With a database instead (the OpenSIPS 3.4 dispatcher
      -- table, shared with an existing installation):
      --   db_url = "mysql://opensips:opensipsrw@127.0.0.1/opensips",
      sets = {
        [1] = {
          { uri = "sip:10.0.0.11:5060", weight = 1, description = "fs1" },
          { uri = "sip:10.0.0.12:5060", weight = 1, description = "fs2" },
          { uri = "sip:10.0.0.13:5060", weight = 2, description = "fs3 (bigger box)" },
        },
      },
      ds_ping_interval = 10,
      ds_probing_mode = 1,
      ds_probing_threshold = 2,
      ds_ping_from = "sip:lb@lunasip.invalid",
      -- Some boxes answer OPTIONS with 404 or 501 and are still alive.
      options_reply_codes = "404,501",
    },
  },
}

function route.main()
  if not sip.maxfwd.mf_process_maxfwd_header(10) then
    sip.sl.sl_send_reply(483, "Too Many Hops")
    sip.exit()
  end

  -- In-dialog requests follow the recorded route set.
  if sip.has_totag() then
    if sip.rr.loose_route() or sip.is_method("ACK") then
      sip.tm.t_relay()
    else
      sip.sl.sl_send_reply(404, "Not Here")
    end
    sip.exit()
  end

  if sip.is_method("CANCEL") then
    if sip.tm.t_check_trans() then sip.tm.t_relay() end
    sip.exit()
  end
  -- A retransmission gets the last reply again and ends here.
  sip.tm.t_check_trans()

  -- Keep-alives to the balancer itself.
  if sip.is_method("OPTIONS") and sip.pv.rU == nil then
    sip.sl.sl_send_reply(200, "OK")
    sip.exit()
  end

  if sip.is_method("INVITE|SUBSCRIBE") then
    sip.rr.record_route()
  end

  -- From the farm: out to wherever the R-URI points (a carrier).
  if sip.dispatcher.ds_is_in_list(sip.pv.si, sip.pv.sp, 1) then
    if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
    sip.exit()
  end

  route.to_farm()
end

function route.to_farm()
  local ok
  if sip.is_method("REGISTER") then
    -- Hash on the user part of the To URI: same phone, same box.
    ok = sip.dispatcher.ds_select_dst(1, 2, "fu")
  else
    ok = sip.dispatcher.ds_select_dst(1, 4, "f")
  end
  if not ok then
    sip.sl.sl_send_reply(503, "No Media Server Available")
    sip.exit()
  end
  sip.xlog("L_INFO", "$rm $ci from $si to box $du\n")
  sip.tm.t_on_failure("next_box")
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end

function failure_route.next_box()
  if sip.tm.t_was_cancelled() then return end
  -- 5xx, or nothing at all came back: the box is in trouble.
  if sip.tm.t_check_status("5[0-9][0-9]") or sip.tm.t_local_replied("all") then
    sip.xlog("L_WARN", "box $du failed $rm $ci ($T_reply_code), trying the next\n")
    sip.dispatcher.ds_mark_dst("p")
    if sip.dispatcher.ds_next_dst() then
      sip.tm.t_on_failure("next_box")
      sip.tm.t_relay()
    end
  end
end

-- Probes and other requests lunasip sends itself pass here first.
function local_route.main()
  sip.append_hf("User-Agent: lunasip load balancer\r\n")
end
