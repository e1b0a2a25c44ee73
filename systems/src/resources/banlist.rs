//! Bans and discouragement. A ban (manual, or escalated from repeated discouragement) is a subnet with
//! an expiry, persisted by the shell on every change; discouragement is a short-lived, in-memory,
//! bounded mark on one address: admitted inbound only while slots are free and evicted first, never
//! dialed. A fresh offence (on a connection made after the discouragement) while it stands → banned.

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

/// Addresses discouraged at most (Core keeps 50,000 in a rolling filter): the oldest are forgotten
/// first, so fresh addresses an attacker owns cannot grow the list.
pub const DISCOURAGED_MAX: usize = 50_000;
/// Automatic (escalated) bans kept at most; the oldest is lifted first. Operator bans are never.
pub const AUTOMATIC_BANS_MAX: usize = 10_000;

/// Discouraged addresses: since when (clock ms) and until when (unix s), bounded, oldest first.
#[derive(Debug, Default)]
struct Discouraged {
    by_ip: ahash::AHashMap<IpAddr, (u64, i64)>,
    /// Insertion order (ip, since): entries whose `since` no longer matches are stale.
    order: std::collections::VecDeque<(IpAddr, u64)>,
}

impl Discouraged {
    fn get(&self, ip: &IpAddr) -> Option<(u64, i64)> {
        self.by_ip.get(ip).copied()
    }

    fn insert(&mut self, ip: IpAddr, since_ms: u64, until_s: i64) {
        self.by_ip.insert(ip, (since_ms, until_s));
        self.order.push_back((ip, since_ms));
        while self.by_ip.len() > DISCOURAGED_MAX || self.order.len() > 2 * DISCOURAGED_MAX {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        let Some((ip, since)) = self.order.pop_front() else { return };
        if self.by_ip.get(&ip).is_some_and(|e| e.0 == since) {
            self.by_ip.remove(&ip);
        }
    }

    fn remove(&mut self, ip: &IpAddr) {
        self.by_ip.remove(ip);
    }

    /// Drops what expired (all last equally long, so the oldest expire first).
    fn sweep(&mut self, now_s: i64) {
        while let Some(&(ip, since)) = self.order.front() {
            match self.by_ip.get(&ip) {
                Some(e) if e.0 == since && e.1 > now_s => break,
                _ => self.pop_oldest(),
            }
        }
    }

    fn clear(&mut self) {
        self.by_ip.clear();
        self.order.clear();
    }
}

/// Bans and discouragement, owned by the Peer Manager. A lookup tries only the prefix lengths
/// that bans use (a handful), so it costs a few map lookups however many bans there are.
#[derive(Resource, Debug, Default)]
pub struct BanList {
    bans: BTreeMap<Subnet, BanEntry>,
    /// How many bans use each (is IPv4, prefix length).
    prefixes: BTreeMap<(bool, u8), usize>,
    discouraged: Discouraged,
    /// Automatic bans, oldest first.
    automatic: std::collections::VecDeque<Subnet>,
    /// Subnets banned since the connection manager last looked: it checks only the peers in them.
    fresh: Vec<Subnet>,
    /// Changes not yet persisted; the shell drains and commits them after each tick.
    pub pending: Vec<BanChange>,
}

impl BanList {
    /// Restores bans loaded from disk (no change is queued).
    pub fn load(entries: impl IntoIterator<Item = (Subnet, BanEntry)>) -> Self {
        let mut list = BanList::default();
        for (subnet, entry) in entries {
            list.insert(subnet, entry);
        }
        list.fresh.clear();
        list
    }

    fn insert(&mut self, subnet: Subnet, entry: BanEntry) {
        if self.bans.insert(subnet, entry).is_none() {
            *self.prefixes.entry((subnet.network.is_ipv4(), subnet.prefix)).or_default() += 1;
        }
        if entry.reason == BanReason::Escalated {
            self.automatic.push_back(subnet);
        }
        self.fresh.push(subnet);
    }

    fn remove(&mut self, subnet: &Subnet) -> bool {
        if self.bans.remove(subnet).is_none() {
            return false;
        }
        let key = (subnet.network.is_ipv4(), subnet.prefix);
        if let Some(n) = self.prefixes.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.prefixes.remove(&key);
            }
        }
        true
    }

    /// Bans a subnet until `until_s`. Past [`AUTOMATIC_BANS_MAX`] automatic bans, the oldest
    /// automatic one is lifted.
    pub fn ban(&mut self, subnet: Subnet, entry: BanEntry) {
        self.insert(subnet, entry);
        self.pending.push(BanChange::Set(subnet, entry));
        while self.automatic.len() > AUTOMATIC_BANS_MAX {
            let Some(oldest) = self.automatic.pop_front() else { break };
            // Still the automatic ban it was (not lifted, not replaced by an operator's)?
            if self.bans.get(&oldest).is_some_and(|e| e.reason == BanReason::Escalated) {
                self.unban(&oldest);
            }
        }
    }

    /// Lifts a ban; false when there was none.
    pub fn unban(&mut self, subnet: &Subnet) -> bool {
        let had = self.remove(subnet);
        if had {
            self.pending.push(BanChange::Remove(*subnet));
        }
        had
    }

    /// Lifts every ban and discouragement.
    pub fn clear(&mut self) {
        self.bans.clear();
        self.prefixes.clear();
        self.automatic.clear();
        self.discouraged.clear();
        self.pending.push(BanChange::Clear);
    }

    /// Whether any unexpired ban covers `ip`.
    pub fn is_banned(&self, ip: IpAddr, now_s: i64) -> bool {
        let ip = canonical(ip);
        let v4 = ip.is_ipv4();
        self.prefixes.keys().filter(|(f, _)| *f == v4).any(|&(_, prefix)| {
            Subnet::new(ip, prefix).is_ok_and(|s| self.bans.get(&s).is_some_and(|e| e.until_s > now_s))
        })
    }

    /// Whether `ip` is discouraged now.
    pub fn is_discouraged(&self, ip: IpAddr, now_s: i64) -> bool {
        self.discouraged.get(&canonical(ip)).is_some_and(|(_, until)| until > now_s)
    }

    /// A peer connected at `connected_ms` misbehaved: its address is discouraged for `for_s`. If it
    /// already was, and this connection was made after that (a fresh offence), it is banned for
    /// `ban_s` instead; an offence on a connection older than the discouragement is the same
    /// episode (two connections racing, or many hosts behind one address) and changes nothing.
    /// Returns true when this escalated to a ban.
    pub fn discourage(&mut self, ip: IpAddr, now_ms: u64, connected_ms: u64, for_s: i64, ban_s: i64) -> bool {
        let ip = canonical(ip);
        let now_s = (now_ms / 1000) as i64;
        if let Some((since_ms, _)) = self.discouraged.get(&ip).filter(|(_, until)| *until > now_s) {
            if connected_ms < since_ms {
                return false;
            }
            self.discouraged.remove(&ip);
            self.ban(
                Subnet::host(ip),
                BanEntry { created_s: now_s, until_s: now_s + ban_s, reason: BanReason::Escalated },
            );
            return true;
        }
        self.discouraged.insert(ip, now_ms, now_s + for_s);
        false
    }

    /// Whether bans were made since the last [`BanList::take_fresh`].
    pub fn has_fresh(&self) -> bool {
        !self.fresh.is_empty()
    }

    /// Subnets banned since the last call (for the connection manager to enforce).
    pub fn take_fresh(&mut self) -> Vec<Subnet> {
        std::mem::take(&mut self.fresh)
    }

    /// Drops expired bans and discouragements; returns how many bans ended.
    pub fn sweep(&mut self, now_s: i64) -> usize {
        let expired: Vec<Subnet> = self.bans.iter().filter(|(_, e)| e.until_s <= now_s).map(|(s, _)| *s).collect();
        for s in &expired {
            self.unban(s);
        }
        self.discouraged.sweep(now_s);
        expired.len()
    }

    /// Current bans, ordered by subnet.
    pub fn bans(&self) -> impl Iterator<Item = (&Subnet, &BanEntry)> {
        self.bans.iter()
    }

    /// Number of addresses discouraged now (some may have expired since the last sweep).
    pub fn discouraged_len(&self) -> usize {
        self.discouraged.by_ip.len()
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
        assert!(!b.discourage(ip, 1_000_000, 999_000, 600, 86_400));
        assert!(b.is_discouraged(ip, 1001) && !b.is_banned(ip, 1001));
        assert!(b.discourage(ip, 1_100_000, 1_050_000, 600, 86_400), "a fresh offence while discouraged → ban");
        assert!(b.is_banned(ip, 1101));
        assert!(matches!(b.pending.last(), Some(BanChange::Set(s, e)) if s.contains(ip) && e.until_s == 1100 + 86_400));
        assert_eq!(b.sweep(1100 + 86_399), 0);
        assert_eq!(b.sweep(1100 + 86_400), 1);
        assert!(!b.is_banned(ip, 1100 + 86_400));
    }

    #[test]
    fn a_hundred_thousand_fresh_ipv6_addresses_offending_once_keep_the_list_bounded() {
        let mut b = BanList::default();
        let base = u128::from("2001:db8:1:2::".parse::<Ipv6Addr>().unwrap());
        for i in 0..100_000u128 {
            let ip = IpAddr::V6(Ipv6Addr::from(base + i + 1));
            assert!(!b.discourage(ip, 1_000_000 + i as u64, 999_000, 86_400, 86_400));
        }
        assert_eq!(b.discouraged_len(), DISCOURAGED_MAX);
        assert!(b.discouraged.order.len() <= 2 * DISCOURAGED_MAX);
        // The newest are remembered, the oldest forgotten (as Core's rolling filter forgets).
        let newest = IpAddr::V6(Ipv6Addr::from(base + 100_000));
        let oldest = IpAddr::V6(Ipv6Addr::from(base + 1));
        assert!(b.is_discouraged(newest, 1_100) && !b.is_discouraged(oldest, 1_100));
        assert_eq!(b.bans().count(), 0);
    }

    #[test]
    fn automatic_bans_are_capped_oldest_first_and_operator_bans_are_never_dropped() {
        let mut b = BanList::default();
        let manual: Subnet = "10.0.0.0/8".parse().unwrap();
        b.ban(manual, BanEntry { created_s: 0, until_s: i64::MAX, reason: BanReason::Manual });
        for i in 0..AUTOMATIC_BANS_MAX as u32 + 5 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i));
            b.discourage(ip, 1_000, 0, 86_400, 86_400);
            assert!(b.discourage(ip, 2_000, 1_500, 86_400, 86_400));
        }
        assert_eq!(b.bans().count(), AUTOMATIC_BANS_MAX + 1);
        assert!(b.is_banned("10.1.2.3".parse().unwrap(), 10));
        assert!(!b.is_banned(IpAddr::V4(Ipv4Addr::from(0x0b00_0000)), 10), "the oldest automatic ban went");
        assert!(b.is_banned(IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + 5)), 10));
    }

    #[test]
    fn lookups_find_bans_of_any_prefix_and_lifting_one_forgets_its_prefix() {
        let mut b = BanList::default();
        let e = BanEntry { created_s: 0, until_s: 100, reason: BanReason::Manual };
        for s in ["1.2.3.4", "5.6.0.0/16", "2001:db8::/48", "::ffff:9.9.9.9"] {
            b.ban(s.parse().unwrap(), e);
        }
        for (ip, banned) in [
            ("1.2.3.4", true),
            ("1.2.3.5", false),
            ("5.6.200.1", true),
            ("5.7.0.1", false),
            ("2001:db8:0:ffff::1", true),
            ("2001:db8:1::1", false),
            ("9.9.9.9", true),
            ("::ffff:5.6.1.1", true),
        ] {
            assert_eq!(b.is_banned(ip.parse().unwrap(), 50), banned, "{ip}");
            assert!(!b.is_banned(ip.parse().unwrap(), 100), "{ip}: expired");
        }
        b.unban(&"5.6.0.0/16".parse().unwrap());
        assert!(!b.is_banned("5.6.200.1".parse().unwrap(), 50));
        assert!(!b.prefixes.contains_key(&(true, 16)));
    }

    #[test]
    fn discouragement_expires() {
        let mut b = BanList::default();
        let ip: IpAddr = "8.8.4.4".parse().unwrap();
        b.discourage(ip, 0, 0, 10, 100);
        assert!(!b.is_discouraged(ip, 10));
        assert!(!b.discourage(ip, 10_000, 10_000, 10, 100), "expired discouragement does not escalate");
    }
}
