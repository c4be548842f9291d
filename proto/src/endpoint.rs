//! Endpoint URLs (`http://HOST:PORT`) as both sides see them: the host and port of a URL,
//! and the one reachability rule — a loopback endpoint is reachable only from its own host.
//! The agent applies it before it advertises an address, the controller when an agent
//! registers.

use std::net::{IpAddr, SocketAddr};

/// The host (without IPv6 brackets) and port of an `http(s)://HOST[:PORT]` URL; the port
/// defaults to the scheme's (80 / 443).
pub fn host_port(url: &str) -> Result<(String, u16), String> {
    let uri: tonic::transport::Uri = url
        .parse()
        .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("URL {url:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = match (uri.port_u16(), uri.scheme_str()) {
        (Some(p), _) => p,
        (None, Some("https")) => 443,
        (None, _) => 80,
    };
    Ok((host, port))
}

/// True when `host` names this machine only: a loopback IP (`127.0.0.0/8`, `::1`, an
/// IPv4-mapped loopback) or `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    host.parse::<IpAddr>()
        .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Why `url` cannot be reached from `peer` (a process on another host), if it cannot:
/// the URL names a loopback host and the peer is not on loopback.
pub fn unreachable_from(url: &str, peer: SocketAddr) -> Option<String> {
    let (host, _) = host_port(url).ok()?;
    (is_loopback_host(&host) && !peer.ip().to_canonical().is_loopback()).then(|| {
        format!(
            "{url} is a loopback address, which {} (another host) cannot reach",
            peer.ip()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_come_out_of_urls_with_scheme_defaults() {
        assert_eq!(
            host_port("http://10.0.0.2:50051").unwrap(),
            ("10.0.0.2".to_string(), 50051)
        );
        assert_eq!(
            host_port("http://[fd00::2]:7").unwrap(),
            ("fd00::2".to_string(), 7)
        );
        assert_eq!(host_port("https://ctl.lan").unwrap().1, 443);
        assert_eq!(host_port("http://ctl.lan").unwrap().1, 80);
        assert!(host_port("not a url").is_err());
    }

    #[test]
    fn loopback_hosts_are_recognised_in_every_spelling() {
        for h in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "::ffff:127.0.0.1",
            "localhost",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "10.77.0.2",
            "0.0.0.0",
            "fd00::1",
            "ctl.lan",
            "localhost.example",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn a_loopback_url_is_unreachable_only_from_another_host() {
        let remote: SocketAddr = "10.77.0.2:40000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let why = unreachable_from("http://127.0.0.1:50061", remote).unwrap();
        assert!(why.contains("10.77.0.2"), "{why}");
        assert_eq!(unreachable_from("http://127.0.0.1:50061", local), None);
        assert_eq!(unreachable_from("http://10.77.0.2:50061", remote), None);
        assert_eq!(unreachable_from("http://node-2.lan:50061", remote), None);
    }
}
