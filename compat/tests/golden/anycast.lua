-- Translated from anycast.cfg by `lunasip translate` (see docs/migration.md).

-- an anycast node replicating CANCEL/ACK it holds no transaction for
config = {
  listen = { "udp:198.51.100.1:5060 anycast tag pub" },
  -- socket=bin:10.0.0.1:5566: the clusterer listens on my_node_info's url
  modules = {
    -- loadmodule "proto_bin.so": BIN is built into the clusterer (it listens on my_node_info's url)
    clusterer = {
      db_mode = 0,
      my_node_id = 1,
      my_node_info = "cluster_id=1,url=bin:10.0.0.1:5566",
      neighbor_node_info = { "cluster_id=1,node_id=2,url=bin:10.0.0.2:5566", "cluster_id=1,node_id=3,url=bin:10.0.0.3:5566", "cluster_id=1,node_id=4,url=bin:10.0.0.4:5566" },
    },
    tm = {
      tm_replication_cluster = 1,
    },
    mi_fifo = false, -- the script loads no mi_fifo: no MI FIFO
    mi_http = false, -- the script loads no mi_http: no MI over HTTP
  },
}

function route.main()
  if sip.is_method("CANCEL|ACK") then
    if sip.tm.t_check_trans() then
      sip.tm.t_relay()
    else
      sip.tm.t_anycast_replicate()
    end
    sip.exit()
  end
  sip.tm.t_relay()
end
