//! The nodes of the clusters, as `my_node_info` / `neighbor_node_info`
//! describe them (OpenSIPS 3.4 clusterer_mod.c `parse_param_node_info`,
//! node_info.c `provision_neighbor`, `provision_current`):
//! `"cluster_id=1,node_id=2,url=bin:127.0.0.1:5566"`.

use std::net::SocketAddr;

/// One node of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub cluster: i32,
    pub node_id: i32,
    /// As given (`bin:127.0.0.1:5566`).
    pub url: String,
    pub addr: SocketAddr,
    pub priority: i32,
    pub no_ping_retries: i32,
    pub sip_addr: Option<String>,
    pub flags: Option<String>,
}

/// OpenSIPS `DEFAULT_NO_PING_RETRIES`.
const DEFAULT_RETRIES: i32 = 3;
/// node_info.h `DEFAULT_PRIORITY`.
const DEFAULT_PRIORITY: i32 = 50;

/// `bin:host:port` (the protocol may be left out); `host` an IP address.
pub fn parse_url(url: &str) -> Result<SocketAddr, String> {
    let rest = match url.split_once(':') {
        Some((p, r)) if p.eq_ignore_ascii_case("bin") => r,
        Some((p, _)) if p.eq_ignore_ascii_case("bins") => {
            return Err(format!("'{url}': bins (TLS) is not supported"))
        }
        Some((p, _)) if !p.starts_with('[') && p.parse::<u16>().is_err() && !p.contains('.') => {
            return Err(format!("'{url}': the clusterer speaks bin only"))
        }
        _ => url,
    };
    let (host, port) =
        crate::config::split_hostport(rest).ok_or_else(|| format!("bad url '{url}'"))?;
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .map_err(|_| format!("'{url}': the host must be an IP address"))?;
    // OpenSIPS proto_bin's default port.
    Ok(SocketAddr::new(ip, port.unwrap_or(5555)))
}

/// The properties of one description; `node_id` may be left out for the
/// current node when `my_node_id` gives it.
pub fn parse(descr: &str, default_id: Option<i32>) -> Result<Node, String> {
    let (mut cluster, mut node_id, mut url) = (None, default_id, None);
    let (mut priority, mut retries) = (DEFAULT_PRIORITY, DEFAULT_RETRIES);
    let (mut sip_addr, mut flags) = (None, None);
    for part in descr.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("'{part}': expected name=value"))?;
        let (k, v) = (k.trim(), v.trim());
        if v.is_empty() {
            return Err(format!("<{k}> value expected"));
        }
        let int = || v.parse::<i32>().map_err(|_| format!("bad value for <{k}>: '{v}'"));
        match k {
            "cluster_id" => cluster = Some(int()?),
            "node_id" => node_id = Some(int()?),
            "url" => url = Some(v.to_string()),
            "priority" => priority = int()?,
            "no_ping_retries" => retries = int()?,
            "sip_addr" => sip_addr = Some(v.to_string()),
            "flags" => flags = Some(v.to_string()),
            other => return Err(format!("unknown property '{other}' (cluster_id, node_id, url, priority, no_ping_retries, sip_addr, flags)")),
        }
    }
    let (Some(cluster), Some(node_id), Some(url)) = (cluster, node_id, url) else {
        return Err("cluster_id, node_id and url are required".into());
    };
    if cluster < 1 || node_id < 1 {
        return Err("cluster_id and node_id must be positive".into());
    }
    Ok(Node {
        cluster,
        node_id,
        addr: parse_url(&url)?,
        url,
        priority,
        no_ping_retries: retries,
        sip_addr,
        flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opensips_descriptions() {
        let n = parse("cluster_id=1, node_id=2, url=bin:127.0.0.1:5566", None).unwrap();
        assert_eq!((n.cluster, n.node_id), (1, 2));
        assert_eq!(n.addr, "127.0.0.1:5566".parse().unwrap());
        assert_eq!(n.url, "bin:127.0.0.1:5566");
        let me = parse("cluster_id=1,url=bin:[::1]:5566", Some(7)).unwrap();
        assert_eq!(me.node_id, 7);
        assert_eq!(parse_url("127.0.0.1").unwrap().port(), 5555);
        assert!(parse("cluster_id=1,url=bin:127.0.0.1:5566", None).is_err());
        assert!(parse("cluster_id=1,node_id=x,url=bin:127.0.0.1", None).is_err());
        assert!(parse("cluster_id=1,node_id=2,url=", None).is_err());
        assert!(parse("cluster_id=1,node_id=2,url=bin:host.example:5566", None).is_err());
        assert!(parse("cluster_id=1,node_id=2,url=udp:127.0.0.1:5566", None).is_err());
        assert!(parse("cluster_id=1,node_id=2,colour=blue,url=bin:127.0.0.1", None).is_err());
    }
}
