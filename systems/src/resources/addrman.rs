//! The address book, "new"/"tried" as in Bitcoin Core's addrman: addresses heard of go to a "new"
//! bucket chosen by their network group *and the group of the peer that told us*; addresses we
//! connected to move to "tried", bucketed by their own group. Placement uses a per-node secret key,
//! so an attacker cannot predict which entries its addresses would push out. Bounded by the tables.

use super::Rng;
use ahash::AHashMap;
use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

/// Buckets for addresses heard of.
pub const NEW_BUCKETS: usize = 1024;
/// Buckets for addresses we connected to.
pub const TRIED_BUCKETS: usize = 256;
/// Slots per bucket.
pub const BUCKET_SIZE: usize = 64;
/// An address older than this (and never tried lately) is terrible.
pub const HORIZON_S: i64 = 30 * 24 * 3600;

/// A BIP155 address: every network is stored, even those we cannot dial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NetAddress {
    /// IPv4.
    Ipv4([u8; 4]),
    /// IPv6.
    Ipv6([u8; 16]),
    /// Tor v3 public key.
    TorV3([u8; 32]),
    /// I2P destination hash.
    I2p([u8; 32]),
    /// CJDNS (fc00::/8).
    Cjdns([u8; 16]),
}

impl NetAddress {
    /// From an IP (IPv4-mapped IPv6 becomes IPv4).
    pub fn from_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => NetAddress::Ipv4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => NetAddress::Ipv4(v4.octets()),
                None => NetAddress::Ipv6(v6.octets()),
            },
        }
    }

    /// The IP, for networks we can dial directly.
    pub fn ip(&self) -> Option<IpAddr> {
        match *self {
            NetAddress::Ipv4(b) => Some(IpAddr::from(b)),
            NetAddress::Ipv6(b) => Some(IpAddr::from(b)),
            _ => None,
        }
    }

    /// The network group: /16 for IPv4, /32 for IPv6, network + 4 bits for overlay networks; local and
    /// unroutable addresses each form one group. Peers in one group are likely one operator.
    pub fn group(&self) -> [u8; 5] {
        match *self {
            NetAddress::Ipv4(b) => [1, b[0], b[1], 0, 0],
            NetAddress::Ipv6(b) => [2, b[0], b[1], b[2], b[3]],
            NetAddress::TorV3(b) => [3, b[0] >> 4, 0, 0, 0],
            NetAddress::I2p(b) => [4, b[0] >> 4, 0, 0, 0],
            NetAddress::Cjdns(b) => [5, b[1] >> 4, 0, 0, 0],
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            NetAddress::Ipv4(b) => b,
            NetAddress::Ipv6(b) | NetAddress::Cjdns(b) => b,
            NetAddress::TorV3(b) | NetAddress::I2p(b) => b,
        }
    }
}

/// An address with its port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PeerAddr {
    /// Where.
    pub addr: NetAddress,
    /// TCP port.
    pub port: u16,
}

impl PeerAddr {
    /// From a socket address.
    pub fn from_socket(s: SocketAddr) -> Self {
        PeerAddr { addr: NetAddress::from_ip(s.ip()), port: s.port() }
    }

    /// The socket address, when dialable over IP.
    pub fn socket(&self) -> Option<SocketAddr> {
        self.addr.ip().map(|ip| SocketAddr::new(ip, self.port))
    }
}

/// Wait before dialing an address again after one failed attempt (doubled per further failure).
pub const RETRY_FIRST_S: i64 = 60;
/// Longest wait between two attempts at one address.
pub const RETRY_MAX_S: i64 = 4 * 3600;

/// What the book knows of one address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrInfo {
    /// The address.
    pub addr: PeerAddr,
    /// Services it advertised.
    pub services: u64,
    /// Last time it was seen alive (as told by peers, or by us), unix s.
    pub time_s: i64,
    /// Last dial attempt.
    pub last_try_s: i64,
    /// Last successful connection.
    pub last_success_s: i64,
    /// Failed attempts since the last success.
    pub attempts: u32,
    /// Group of the peer that told us (new-bucket placement).
    pub source_group: [u8; 5],
    /// Whether it is in the tried table.
    pub tried: bool,
}

impl AddrInfo {
    /// Core's "terrible": too old, from the future, or failing repeatedly — not worth keeping.
    pub fn is_terrible(&self, now_s: i64) -> bool {
        if self.last_try_s >= now_s - 60 {
            return false;
        }
        self.time_s > now_s + 600
            || self.time_s == 0
            || now_s - self.time_s > HORIZON_S
            || (self.last_success_s == 0 && self.attempts >= 3)
            || (now_s - self.last_success_s > 7 * 24 * 3600 && self.attempts >= 10)
    }

    /// When it may be dialed again: at once if it never failed since its last success, else
    /// [`RETRY_FIRST_S`] after the last try, doubling with each failure up to [`RETRY_MAX_S`]. A node
    /// without a network does not cycle through the same few addresses every few seconds.
    pub fn retry_at_s(&self) -> i64 {
        match self.attempts {
            0 => 0,
            n => self.last_try_s + (RETRY_FIRST_S << (n - 1).min(16)).min(RETRY_MAX_S),
        }
    }

    /// Relative chance of being selected: recent failures make it less likely.
    fn chance(&self, now_s: i64) -> f64 {
        let mut c = 1.0;
        if now_s - self.last_try_s < 600 {
            c *= 0.01;
        }
        c * 0.66f64.powi(self.attempts.min(8) as i32)
    }
}

/// A table slot: the id of the entry in it. Ids are never 0, so an empty slot is all zero bytes and
/// a fresh table is zeroed memory the system maps in only as slots fill (as `Option<u32>`, 8 bytes
/// a slot written out, the 81,920 slots were 0.64 MB resident from the start).
type Slot = Option<NonZeroU32>;

fn slot_of(id: u32) -> Slot {
    NonZeroU32::new(id)
}

/// The address book resource.
#[derive(Resource, Debug)]
pub struct AddrBook {
    key: [u8; 32],
    entries: AHashMap<u32, AddrInfo>,
    by_addr: AHashMap<PeerAddr, u32>,
    new_table: Vec<Slot>,
    tried_table: Vec<Slot>,
    next_id: u32,
    new_count: usize,
    tried_count: usize,
    // Dense lists of the ids in each table, so selection is O(1) however sparse the tables are.
    new_list: Vec<u32>,
    tried_list: Vec<u32>,
    list_pos: AHashMap<u32, usize>,
}

impl AddrBook {
    /// An empty book with a secret key (random per node, persisted with the book).
    pub fn new(key: [u8; 32]) -> Self {
        AddrBook {
            key,
            entries: AHashMap::new(),
            by_addr: AHashMap::new(),
            new_table: vec![None; NEW_BUCKETS * BUCKET_SIZE],
            tried_table: vec![None; TRIED_BUCKETS * BUCKET_SIZE],
            next_id: 1,
            new_count: 0,
            tried_count: 0,
            new_list: Vec::new(),
            tried_list: Vec::new(),
            list_pos: AHashMap::new(),
        }
    }

    /// A book with a key drawn from `rng`.
    pub fn random(rng: &mut Rng) -> Self {
        let mut key = [0u8; 32];
        for chunk in key.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        Self::new(key)
    }

    /// The secret key, for persistence.
    pub fn key(&self) -> [u8; 32] {
        self.key
    }

    fn hash(&self, parts: &[&[u8]]) -> u64 {
        let mut h = Sha256::new();
        h.update(self.key);
        for p in parts {
            h.update((p.len() as u32).to_le_bytes());
            h.update(p);
        }
        let d = h.finalize();
        u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }

    /// A network group hashed with the secret key: eviction protects groups by this value, so an
    /// attacker cannot tell which of its groups would be protected.
    pub fn keyed_group(&self, group: &[u8; 5]) -> u64 {
        self.hash(&[b"KG", group])
    }

    fn addr_bytes(a: &PeerAddr) -> Vec<u8> {
        let mut v = a.addr.bytes().to_vec();
        v.extend_from_slice(&a.port.to_be_bytes());
        v
    }

    fn new_slot(&self, a: &PeerAddr, source_group: &[u8; 5]) -> usize {
        let g = a.addr.group();
        let h1 = self.hash(&[b"N1", &g, source_group]) % 64;
        let bucket = self.hash(&[b"N2", source_group, &h1.to_le_bytes()]) as usize % NEW_BUCKETS;
        let pos = self.hash(&[b"NP", &bucket.to_le_bytes(), &Self::addr_bytes(a)]) as usize % BUCKET_SIZE;
        bucket * BUCKET_SIZE + pos
    }

    fn tried_slot(&self, a: &PeerAddr) -> usize {
        let h1 = self.hash(&[b"T1", &Self::addr_bytes(a)]) % 8;
        let bucket = self.hash(&[b"T2", &a.addr.group(), &h1.to_le_bytes()]) as usize % TRIED_BUCKETS;
        let pos = self.hash(&[b"TP", &bucket.to_le_bytes(), &Self::addr_bytes(a)]) as usize % BUCKET_SIZE;
        bucket * BUCKET_SIZE + pos
    }

    /// Entries in the new and tried tables.
    pub fn counts(&self) -> (usize, usize) {
        (self.new_count, self.tried_count)
    }

    /// Total entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What the book knows of `a`.
    pub fn get(&self, a: &PeerAddr) -> Option<&AddrInfo> {
        self.by_addr.get(a).and_then(|id| self.entries.get(id))
    }

    fn list_insert(&mut self, id: u32, tried: bool) {
        let list = if tried { &mut self.tried_list } else { &mut self.new_list };
        self.list_pos.insert(id, list.len());
        list.push(id);
    }

    fn list_remove(&mut self, id: u32, tried: bool) {
        let Some(pos) = self.list_pos.remove(&id) else { return };
        let list = if tried { &mut self.tried_list } else { &mut self.new_list };
        list.swap_remove(pos);
        if let Some(&moved) = list.get(pos) {
            self.list_pos.insert(moved, pos);
        }
    }

    fn remove_id(&mut self, id: u32) {
        if let Some(info) = self.entries.remove(&id) {
            self.list_remove(id, info.tried);
            self.by_addr.remove(&info.addr);
            if info.tried {
                self.tried_count -= 1;
            } else {
                self.new_count -= 1;
            }
        }
    }

    /// Adds an address heard from a peer in `source_group`. Returns true when it is new to the book.
    /// A slot held by a good entry is kept; a terrible one is replaced.
    pub fn add(&mut self, addr: PeerAddr, services: u64, time_s: i64, source_group: [u8; 5], now_s: i64) -> bool {
        if let Some(&id) = self.by_addr.get(&addr) {
            if let Some(e) = self.entries.get_mut(&id) {
                e.services |= services;
                e.time_s = e.time_s.max(time_s.min(now_s));
            }
            return false;
        }
        let slot = self.new_slot(&addr, &source_group);
        if let Some(old) = self.new_table[slot].map(NonZeroU32::get) {
            let keep = self.entries.get(&old).is_some_and(|e| !e.is_terrible(now_s));
            if keep {
                return false;
            }
            self.remove_id(old);
        }
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        let info = AddrInfo {
            addr,
            services,
            time_s: time_s.min(now_s),
            last_try_s: 0,
            last_success_s: 0,
            attempts: 0,
            source_group,
            tried: false,
        };
        self.entries.insert(id, info);
        self.by_addr.insert(addr, id);
        self.new_table[slot] = slot_of(id);
        self.new_count += 1;
        self.list_insert(id, false);
        true
    }

    /// Records a dial attempt.
    pub fn attempt(&mut self, addr: &PeerAddr, now_s: i64) {
        if let Some(e) = self.by_addr.get(addr).and_then(|id| self.entries.get_mut(id)) {
            e.last_try_s = now_s;
            e.attempts += 1;
        }
    }

    /// Records a successful handshake: the address moves to "tried" (evicting the slot's holder back
    /// to "new", as Core does).
    pub fn good(&mut self, addr: &PeerAddr, now_s: i64) {
        let Some(&id) = self.by_addr.get(addr) else { return };
        let Some(info) = self.entries.get_mut(&id) else { return };
        info.last_success_s = now_s;
        info.last_try_s = now_s;
        info.time_s = now_s;
        info.attempts = 0;
        if info.tried {
            return;
        }
        let source_group = info.source_group;
        let new_slot = self.new_slot(addr, &source_group);
        if self.new_table[new_slot] == slot_of(id) {
            self.new_table[new_slot] = None;
        }
        let slot = self.tried_slot(addr);
        if let Some(old) = self.tried_table[slot].take().map(NonZeroU32::get) {
            // Move the displaced entry back to new, if its new slot is free.
            if let Some(o) = self.entries.get_mut(&old) {
                o.tried = false;
                self.tried_count -= 1;
                self.new_count += 1;
                self.list_remove(old, true);
                self.list_insert(old, false);
            }
            let back = self.entries.get(&old).map(|o| (o.addr, o.source_group));
            if let Some((oaddr, og)) = back {
                let s = self.new_slot(&oaddr, &og);
                if self.new_table[s].is_none() {
                    self.new_table[s] = slot_of(old);
                } else {
                    self.remove_id(old);
                }
            }
        }
        if let Some(info) = self.entries.get_mut(&id) {
            info.tried = true;
        }
        self.tried_table[slot] = slot_of(id);
        self.new_count -= 1;
        self.tried_count += 1;
        self.list_remove(id, false);
        self.list_insert(id, true);
    }

    /// Picks an address to dial: tried or new at even odds (new only when `new_only`, for feelers),
    /// uniformly within the table, accepted by each entry's chance (the bar lowers with each refusal). `None` when the book has nothing usable.
    pub fn select(&self, rng: &mut Rng, new_only: bool, now_s: i64) -> Option<&AddrInfo> {
        if self.entries.is_empty() || (new_only && self.new_count == 0) {
            return None;
        }
        let use_tried = !new_only && self.tried_count > 0 && (self.new_count == 0 || rng.next_u64() & 1 == 0);
        let list = if use_tried { &self.tried_list } else { &self.new_list };
        let mut factor = 1.0f64;
        for _ in 0..1_000 {
            let id = list[rng.below(list.len() as u64) as usize];
            let Some(info) = self.entries.get(&id) else { continue };
            let r = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            if r < factor * info.chance(now_s) {
                return Some(info);
            }
            factor *= 1.2;
        }
        None
    }

    /// Up to `max` addresses, at most `pct` percent of the book, in random order, skipping terrible
    /// ones: what a `getaddr` answer draws from.
    pub fn sample(&self, rng: &mut Rng, max: usize, pct: usize, now_s: i64) -> Vec<AddrInfo> {
        let n = max.min(self.entries.len() * pct / 100);
        let mut all: Vec<&AddrInfo> = self.entries.values().collect();
        all.sort_unstable_by_key(|a| a.addr);
        let mut out = Vec::with_capacity(n);
        let len = all.len();
        for i in 0..len {
            if out.len() >= n {
                break;
            }
            let j = i + rng.below((len - i) as u64) as usize;
            all.swap(i, j);
            if !all[i].is_terrible(now_s) {
                out.push(all[i].clone());
            }
        }
        out
    }

    /// Every entry, for persistence (stable order).
    pub fn entries(&self) -> Vec<&AddrInfo> {
        let mut v: Vec<&AddrInfo> = self.entries.values().collect();
        v.sort_unstable_by_key(|a| a.addr);
        v
    }

    /// Restores entries saved by [`AddrBook::entries`]; tried ones go back to tried.
    pub fn restore(&mut self, infos: impl IntoIterator<Item = AddrInfo>, now_s: i64) {
        for info in infos {
            let tried = info.tried;
            let addr = info.addr;
            if self.add(addr, info.services, info.time_s, info.source_group, now_s.max(info.time_s)) {
                if let Some(e) = self.by_addr.get(&addr).and_then(|id| self.entries.get_mut(id)) {
                    e.last_try_s = info.last_try_s;
                    e.last_success_s = info.last_success_s;
                    e.attempts = info.attempts;
                }
                if tried {
                    let last_success = info.last_success_s;
                    self.good(&addr, last_success);
                }
            }
        }
    }

    /// Removes terrible entries; returns how many went.
    pub fn age_out(&mut self, now_s: i64) -> usize {
        let dead: Vec<u32> =
            self.entries.iter().filter(|(_, e)| !e.tried && e.is_terrible(now_s)).map(|(id, _)| *id).collect();
        for id in &dead {
            if let Some(info) = self.entries.get(id) {
                let slot = self.new_slot(&info.addr, &info.source_group);
                if self.new_table[slot] == slot_of(*id) {
                    self.new_table[slot] = None;
                }
            }
            self.remove_id(*id);
        }
        dead.len()
    }
}

#[cfg(test)]
#[path = "addrman_tests.rs"]
mod tests;
