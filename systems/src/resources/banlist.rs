//! Bans and discouragement. A ban (manual, or escalated from repeated discouragement) is a subnet with
//! an expiry, persisted by the shell on every change; discouragement is a short-lived, in-memory mark
//! on one address: refused inbound, never dialed. Discouraged again while it stands → banned.

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 or IPv6 network in CIDR form; a single address is a /32 or /128.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    /// The network address (host bits zeroed).
    pub network: IpAddr,
    /// Prefix length in bits.
    pub prefix: u8,
}

/// A subnet string that does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetParseError(pub String);

impl fmt::Display for SubnetParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid IP/subnet: {}", self.0)
    }
}

impl std::error::Error for SubnetParseError {}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Subnet {
    /// The single-address subnet of `ip` (IPv4-mapped IPv6 is treated as IPv4).
    pub fn host(ip: IpAddr) -> Self {
        let ip = canonical(ip);
        Subnet { network: ip, prefix: if ip.is_ipv4() { 32 } else { 128 } }
    }

    /// A subnet from any address in it and a prefix; host bits are cleared.
    pub fn new(ip: IpAddr, prefix: u8) -> Result<Self, SubnetParseError> {
        let ip = canonical(ip);
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(SubnetParseError(format!("{ip}/{prefix}")));
        }
        let network = match ip {
            IpAddr::V4(v4) => {
                let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        };
        Ok(Subnet { network, prefix })
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                Subnet::new(ip, self.prefix).is_ok_and(|s| s.network == self.network)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = SubnetParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SubnetParseError(s.to_string());
        match s.split_once('/') {
            None => s.parse::<IpAddr>().map(Subnet::host).map_err(|_| bad()),
            Some((ip, mask)) => {
                let ip: IpAddr = ip.parse().map_err(|_| bad())?;
                if let Ok(prefix) = mask.parse::<u8>() {
                    return Subnet::new(ip, prefix).map_err(|_| bad());
                }
                // Core also accepts a netmask (255.255.255.0); it must be contiguous.
                let mask: IpAddr = mask.parse().map_err(|_| bad())?;
                let (bits, ones) = match mask {
                    IpAddr::V4(m) => (u32::from(m) as u128, u32::from(m).count_ones()),
                    IpAddr::V6(m) => (u128::from(m), u128::from(m).count_ones()),
                };
                let width = if mask.is_ipv4() { 32 } else { 128 };
                let expect =
                    if ones == 0 { 0 } else { (u128::MAX >> (128 - width)) & !((1u128 << (width - ones)) - 1) };
                if bits != expect || mask.is_ipv4() != canonical(ip).is_ipv4() {
                    return Err(bad());
                }
                Subnet::new(ip, ones as u8).map_err(|_| bad())
            }
        }
    }
}

impl Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subnet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a ban exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BanReason {
    /// An operator asked (RPC setban).
    Manual,
    /// The address misbehaved again while discouraged.
    Escalated,
}

/// One ban.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanEntry {
    /// When it was made, unix seconds.
    pub created_s: i64,
    /// When it ends, unix seconds.
    pub until_s: i64,
    /// Why.
    pub reason: BanReason,
}

/// A change for the shell to persist before it reports the change done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BanChange {
    /// Add or replace.
    Set(Subnet, BanEntry),
    /// Remove.
    Remove(Subnet),
    /// Remove all.
    Clear,
}

/// Bans and discouragement, owned by the Peer Manager.
#[derive(Resource, Debug, Default)]
pub struct BanList {
    bans: BTreeMap<Subnet, BanEntry>,
    discouraged: ahash::AHashMap<IpAddr, i64>,
    /// Changes not yet persisted; the shell drains and commits them after each tick.
    pub pending: Vec<BanChange>,
}

impl BanList {
    /// Restores bans loaded from disk (no change is queued).
    pub fn load(entries: impl IntoIterator<Item = (Subnet, BanEntry)>) -> Self {
        BanList { bans: entries.into_iter().collect(), ..Default::default() }
    }

    /// Bans a subnet until `until_s`.
    pub fn ban(&mut self, subnet: Subnet, entry: BanEntry) {
        self.bans.insert(subnet, entry);
        self.pending.push(BanChange::Set(subnet, entry));
    }

    /// Lifts a ban; false when there was none.
    pub fn unban(&mut self, subnet: &Subnet) -> bool {
        let had = self.bans.remove(subnet).is_some();
        if had {
            self.pending.push(BanChange::Remove(*subnet));
        }
        had
    }

    /// Lifts every ban and discouragement.
    pub fn clear(&mut self) {
        self.bans.clear();
        self.discouraged.clear();
        self.pending.push(BanChange::Clear);
    }

    /// Whether any unexpired ban covers `ip`.
    pub fn is_banned(&self, ip: IpAddr, now_s: i64) -> bool {
        self.bans.iter().any(|(s, e)| e.until_s > now_s && s.contains(ip))
    }

    /// Whether `ip` is discouraged now.
    pub fn is_discouraged(&self, ip: IpAddr, now_s: i64) -> bool {
        self.discouraged.get(&canonical(ip)).is_some_and(|&until| until > now_s)
    }

    /// Discourages `ip` for `for_s`; if it already was, bans it for `ban_s` instead. Returns true when
    /// this escalated to a ban.
    pub fn discourage(&mut self, ip: IpAddr, now_s: i64, for_s: i64, ban_s: i64) -> bool {
        let ip = canonical(ip);
        if self.is_discouraged(ip, now_s) {
            self.discouraged.remove(&ip);
            self.ban(
                Subnet::host(ip),
                BanEntry { created_s: now_s, until_s: now_s + ban_s, reason: BanReason::Escalated },
            );
            return true;
        }
        self.discouraged.insert(ip, now_s + for_s);
        false
    }

    /// Drops expired bans and discouragements; returns how many bans ended.
    pub fn sweep(&mut self, now_s: i64) -> usize {
        let expired: Vec<Subnet> = self.bans.iter().filter(|(_, e)| e.until_s <= now_s).map(|(s, _)| *s).collect();
        for s in &expired {
            self.unban(s);
        }
        self.discouraged.retain(|_, until| *until > now_s);
        expired.len()
    }

    /// Current bans, ordered by subnet.
    pub fn bans(&self) -> impl Iterator<Item = (&Subnet, &BanEntry)> {
        self.bans.iter()
    }

    /// Number of addresses discouraged now (some may have expired since the last sweep).
    pub fn discouraged_len(&self) -> usize {
        self.discouraged.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_cidr_netmask_and_single_addresses() {
        let s: Subnet = "10.1.2.3/16".parse().unwrap();
        assert_eq!(s.to_string(), "10.1.0.0/16");
        assert!(s.contains("10.1.200.7".parse().unwrap()));
        assert!(!s.contains("10.2.0.1".parse().unwrap()));
        assert!(s.contains("::ffff:10.1.9.9".parse().unwrap()), "mapped IPv4 is IPv4");
        let m: Subnet = "192.168.1.0/255.255.255.0".parse().unwrap();
        assert_eq!(m.prefix, 24);
        assert!("192.168.1.0/255.0.255.0".parse::<Subnet>().is_err(), "non-contiguous mask");
        let v6: Subnet = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        assert_eq!("1.2.3.4".parse::<Subnet>().unwrap().prefix, 32);
        assert!("1.2.3.4/33".parse::<Subnet>().is_err());
        assert!("nonsense".parse::<Subnet>().is_err());
    }

    #[test]
    fn discouraged_twice_is_banned_and_bans_expire() {
        let mut b = BanList::default();
        let ip: IpAddr = "8.8.8.8".parse().unwrap();
        assert!(!b.discourage(ip, 1000, 600, 86_400));
        assert!(b.is_discouraged(ip, 1001) && !b.is_banned(ip, 1001));
        assert!(b.discourage(ip, 1100, 600, 86_400), "again while discouraged → ban");
        assert!(b.is_banned(ip, 1101));
        assert!(matches!(b.pending.last(), Some(BanChange::Set(s, e)) if s.contains(ip) && e.until_s == 1100 + 86_400));
        assert_eq!(b.sweep(1100 + 86_399), 0);
        assert_eq!(b.sweep(1100 + 86_400), 1);
        assert!(!b.is_banned(ip, 1100 + 86_400));
    }

    #[test]
    fn discouragement_expires() {
        let mut b = BanList::default();
        let ip: IpAddr = "8.8.4.4".parse().unwrap();
        b.discourage(ip, 0, 10, 100);
        assert!(!b.is_discouraged(ip, 10));
        assert!(!b.discourage(ip, 10, 10, 100), "expired discouragement does not escalate");
    }
}
