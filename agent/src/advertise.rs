//! The URL the controller uses to reach this agent.
//!
//! `--advertise` wins. Otherwise an agent bound to one address advertises that address, and
//! one bound to a wildcard (`0.0.0.0`, `::`) advertises the local address of its route to
//! the controller: a UDP socket "connected" to the controller's address gets the source
//! address the kernel would use, without sending a packet. The route is looked up again at
//! every registration, so an address that changes (DHCP) is followed.
//!
//! An address the controller cannot reach — a loopback one while the controller is on
//! another host — is refused with the flags that fix it (see
//! [`switchyard_proto::endpoint::unreachable_from`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use switchyard_proto::endpoint;

/// How this agent's data-path URL is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advertise {
    /// `--advertise URL`, as given.
    Fixed(String),
    /// Bound to one address: that address.
    Bound(SocketAddr),
    /// Bound to a wildcard address on this port: the local address of the route to the
    /// controller.
    Route(u16),
}

impl Advertise {
    /// The rule for an agent bound to `bound`, with `explicit` from `--advertise`.
    pub fn new(explicit: Option<&str>, bound: SocketAddr) -> Self {
        match explicit {
            Some(url) => Advertise::Fixed(url.to_string()),
            None if bound.ip().is_unspecified() => Advertise::Route(bound.port()),
            None => Advertise::Bound(bound),
        }
    }

    /// The URL to register with the controller at `controller` (its resolved address), or
    /// why the controller could not reach any URL this rule gives.
    pub fn url(&self, controller: SocketAddr) -> Result<String, String> {
        let url = match self {
            Advertise::Fixed(url) => url.clone(),
            Advertise::Bound(addr) => format!("http://{addr}"),
            Advertise::Route(port) => {
                let ip = local_ip_towards(controller).map_err(|e| {
                    format!("cannot find this host's address on the route to the controller at {controller}: {e} (set --advertise http://THIS_HOST:{port})")
                })?;
                format!("http://{}", SocketAddr::new(ip, *port))
            }
        };
        match endpoint::unreachable_from(&url, controller) {
            None => Ok(url),
            Some(why) => Err(format!(
                "this agent would advertise {why} (the controller at {controller} runs there): {}",
                self.fix()
            )),
        }
    }

    /// The flags that make this agent reachable from another host.
    fn fix(&self) -> &'static str {
        "listen on all interfaces, e.g. --agent-listen 0.0.0.0:50061 (or [agent] listen), and the agent advertises its address on the route to the controller; or set --advertise http://THIS_HOST:PORT"
    }
}

/// The local address of the route to `peer` (no packet is sent).
pub fn local_ip_towards(peer: SocketAddr) -> std::io::Result<IpAddr> {
    let any: IpAddr = if peer.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = UdpSocket::bind(SocketAddr::new(any, 0))?;
    socket.connect(peer)?;
    Ok(socket.local_addr()?.ip())
}

/// The first address the controller URL's host resolves to (DNS, limited to 5 s).
pub async fn resolve(url: &str) -> Result<SocketAddr, String> {
    let (host, port) = endpoint::host_port(url)?;
    let lookup = tokio::net::lookup_host((host.as_str(), port));
    match tokio::time::timeout(Duration::from_secs(5), lookup).await {
        Ok(Ok(mut addrs)) => addrs.next().ok_or_else(|| format!("{host} has no address")),
        Ok(Err(e)) => Err(format!("cannot resolve {host}: {e}")),
        Err(_) => Err(format!("resolving {host} took longer than 5 s")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_rule_follows_the_flags_and_the_bound_address() {
        assert_eq!(
            Advertise::new(Some("http://nas:1"), addr("0.0.0.0:5")),
            Advertise::Fixed("http://nas:1".into())
        );
        assert_eq!(Advertise::new(None, addr("0.0.0.0:5")), Advertise::Route(5));
        assert_eq!(Advertise::new(None, addr("[::]:5")), Advertise::Route(5));
        assert_eq!(
            Advertise::new(None, addr("10.0.0.3:5")),
            Advertise::Bound(addr("10.0.0.3:5"))
        );
    }

    #[test]
    fn a_wildcard_agent_advertises_its_address_on_the_route_to_the_controller() {
        // The route to a loopback controller leaves from loopback (real kernel lookup).
        let url = Advertise::Route(50061)
            .url(addr("127.0.0.1:50051"))
            .unwrap();
        assert_eq!(url, "http://127.0.0.1:50061");
        let bound = Advertise::Bound(addr("127.0.0.1:7")).url(addr("127.0.0.1:50051"));
        assert_eq!(bound.unwrap(), "http://127.0.0.1:7");
    }

    #[test]
    fn a_loopback_address_is_refused_when_the_controller_is_on_another_host() {
        let remote = addr("192.0.2.10:50051");
        let err = Advertise::Bound(addr("127.0.0.1:0"))
            .url(remote)
            .unwrap_err();
        assert!(err.contains("--agent-listen 0.0.0.0:50061"), "{err}");
        assert!(err.contains("--advertise"), "{err}");
        let err = Advertise::Fixed("http://localhost:9000".into())
            .url(remote)
            .unwrap_err();
        assert!(
            err.contains("http://localhost:9000 is a loopback address"),
            "{err}"
        );
        assert_eq!(
            Advertise::Fixed("http://10.0.0.3:9000".into())
                .url(remote)
                .unwrap(),
            "http://10.0.0.3:9000"
        );
    }

    #[test]
    fn ip_literals_resolve_without_dns() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert_eq!(
            rt.block_on(resolve("http://127.0.0.1:50051")).unwrap(),
            addr("127.0.0.1:50051")
        );
        assert_eq!(
            rt.block_on(resolve("http://[::1]:7")).unwrap(),
            addr("[::1]:7")
        );
        assert!(rt.block_on(resolve("nonsense")).is_err());
    }
}
