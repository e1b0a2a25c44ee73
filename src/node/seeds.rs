//! Where a node with an empty address book finds its first peers: DNS seeds (resolved here in the
//! shell, on the IO runtime, never on the world thread; `--dnsseed=0` turns them off) and a small
//! fixed list per network, taken from Bitcoin Core's contrib/seeds node lists (data, not code).

use crate::node::NodeHandle;
use oni_systems::resources::{AddrBook, Clock, NetAddress, PeerAddr};
use oni_systems::wire::services::{NODE_NETWORK, NODE_WITNESS};
use oni_systems::wire::Network;
use std::net::SocketAddr;

/// DNS seeds per network (Bitcoin Core's chainparams).
pub fn dns_seeds(network: Network) -> &'static [&'static str] {
    match network {
        Network::Main => &[
            "seed.bitcoin.sipa.be",
            "dnsseed.bluematt.me",
            "seed.bitcoin.jonasschnelli.ch",
            "seed.btc.petertodd.net",
            "seed.bitcoin.sprovoost.nl",
            "dnsseed.emzy.de",
            "seed.bitcoin.wiz.biz",
            "seed.mainnet.achownodes.xyz",
        ],
        Network::Testnet4 => &["seed.testnet4.bitcoin.sprovoost.nl", "seed.testnet4.wiz.biz"],
        Network::Signet => &["seed.signet.bitcoin.sprovoost.nl", "seed.signet.achownodes.xyz"],
        Network::Regtest => &[],
    }
}

/// A few long-lived nodes per network, used when DNS gives nothing.
pub fn fixed_seeds(network: Network) -> &'static [&'static str] {
    match network {
        Network::Main => &[
            "2.121.116.198:8333",
            "35.78.97.86:8333",
            "50.5.142.64:8333",
            "67.176.35.116:8333",
            "74.50.72.174:8333",
            "82.166.165.78:8333",
            "91.125.172.33:8333",
            "104.128.64.58:8333",
        ],
        Network::Testnet4 => &["2.59.134.244:48333", "142.160.218.208:48333"],
        Network::Signet => &["34.135.189.101:38333", "185.202.239.115:38333"],
        Network::Regtest => &[],
    }
}

/// Adds `addrs` to the book, as told by `source` (each seed is its own source group).
pub fn add_to_book(world: &mut bevy_ecs::world::World, addrs: &[SocketAddr], source: [u8; 5]) -> usize {
    let now_s = world.resource::<Clock>().unix_s();
    let mut book = world.resource_mut::<AddrBook>();
    addrs
        .iter()
        .filter(|a| book.add(PeerAddr::from_socket(**a), NODE_NETWORK | NODE_WITNESS, now_s, source, now_s))
        .count()
}

/// Resolves every DNS seed off the world thread and feeds the answers to the book; when none
/// answers within the timeout, falls back to the fixed seeds.
pub fn query_dns_seeds(handle: &NodeHandle, network: Network) {
    let handle = handle.clone();
    handle.runtime().clone().spawn(async move {
        let port = network.default_port();
        let mut total = 0;
        for (i, seed) in dns_seeds(network).iter().enumerate() {
            let lookup = tokio::net::lookup_host((*seed, port));
            let addrs: Vec<SocketAddr> = match tokio::time::timeout(std::time::Duration::from_secs(10), lookup).await {
                Ok(Ok(it)) => it.collect(),
                Ok(Err(e)) => {
                    tracing::debug!(seed, "dns seed failed: {e}");
                    continue;
                }
                Err(_) => continue,
            };
            let source = [9, i as u8, 0, 0, 0];
            let added = handle.with_world_async(move |w| add_to_book(w, &addrs, source)).await.unwrap_or(0);
            tracing::info!(seed, added, "dns seed answered");
            total += added;
        }
        if total == 0 {
            let fixed: Vec<SocketAddr> = fixed_seeds(network).iter().filter_map(|s| s.parse().ok()).collect();
            let added = handle.with_world_async(move |w| add_to_book(w, &fixed, [9, 255, 0, 0, 0])).await.unwrap_or(0);
            tracing::info!(added, "no dns seed answered; using fixed seeds");
        }
    });
}

/// The network group of a seed answer's source, for tests.
pub fn group_of(addr: SocketAddr) -> [u8; 5] {
    NetAddress::from_ip(addr.ip()).group()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_seeds_parse_and_use_the_network_port() {
        for n in [Network::Main, Network::Testnet4, Network::Signet] {
            assert!(!fixed_seeds(n).is_empty() && !dns_seeds(n).is_empty());
            for s in fixed_seeds(n) {
                let a: SocketAddr = s.parse().unwrap();
                assert_eq!(a.port(), n.default_port(), "{s}");
            }
        }
        assert!(dns_seeds(Network::Regtest).is_empty());
    }

    #[test]
    fn seed_answers_enter_the_book() {
        let mut world = oni_systems::schedule::build_world(oni_systems::schedule::WorldSettings::new(
            oni_systems::resources::Config::new(Network::Main),
            1,
        ));
        world.resource_mut::<Clock>().now_ms = 1_700_000_000_000;
        let addrs: Vec<SocketAddr> = fixed_seeds(Network::Main).iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(add_to_book(&mut world, &addrs, group_of(addrs[0])), addrs.len());
        assert_eq!(world.resource::<AddrBook>().len(), addrs.len());
    }
}
