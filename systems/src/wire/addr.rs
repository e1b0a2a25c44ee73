//! Address gossip: `addr` (26-byte v1 addresses with a time) and `addrv2` (BIP155: any network,
//! variable-length addresses).
//!
//! BIP155 decisions, following Bitcoin Core:
//! - a known network id with the wrong address length refuses the message (`InvalidValue`);
//! - an address over 512 bytes refuses the message (`FieldTooLong`);
//! - unknown network ids are *skipped* (BIP155 requires it, for networks added later);
//! - TorV2 (id 3) with its 10-byte length is skipped: obsolete since Tor dropped it, Core no longer
//!   keeps it; with another length it is refused like any known network;
//! - IPv6 addresses that embed IPv4, TorV2 or Core-internal prefixes are skipped (Core turns them
//!   into an invalid address that its address manager drops); so are CJDNS addresses outside
//!   fc00::/8 (Core holds them invalid).
//!
//! Skipped entries are counted in [`AddrV2List::skipped`] so the address system can see them.

use super::reader::{write_compact_size, Reader};
use super::version::NetAddr;
use super::{DecodeError, MAX_ADDRV2_ADDR_BYTES, MAX_ADDR_ENTRIES};

/// Bytes of one `addr` entry: time (4) + services, ip, port (26).
pub const ADDR_ENTRY_BYTES: usize = 4 + NetAddr::LEN;
/// Smallest possible `addrv2` entry: time, 1-byte services, network id, 1-byte length, port.
pub const ADDRV2_ENTRY_MIN_BYTES: usize = 4 + 1 + 1 + 1 + 2;

const IPV4_IN_IPV6_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
const TORV2_IN_IPV6_PREFIX: [u8; 6] = [0xfd, 0x87, 0xd8, 0x7e, 0xeb, 0x43];
const CJDNS_PREFIX: u8 = 0xfc;
const INTERNAL_IN_IPV6_PREFIX: [u8; 6] = [0xfd, 0x6b, 0x88, 0xc0, 0x87, 0x24];

/// One `addr` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrEntry {
    /// When the node was last seen, unix seconds.
    pub time: u32,
    /// Services, IPv6 (or IPv4-mapped) address and port.
    pub addr: NetAddr,
}

/// Decodes an `addr` body: count ≤ 1,000 checked against the bytes left, then the entries.
pub fn decode_addr(r: &mut Reader<'_>) -> Result<Vec<AddrEntry>, DecodeError> {
    let n = r.count(MAX_ADDR_ENTRIES, ADDR_ENTRY_BYTES)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(AddrEntry { time: r.u32_le()?, addr: NetAddr::decode(r)? });
    }
    Ok(out)
}

/// Appends an `addr` body.
pub fn encode_addr(entries: &[AddrEntry], out: &mut Vec<u8>) {
    write_compact_size(out, entries.len() as u64);
    for e in entries {
        out.extend_from_slice(&e.time.to_le_bytes());
        e.addr.encode(out);
    }
}

/// A BIP155 address on one of the networks oni keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddrV2Addr {
    /// Network id 1.
    Ipv4([u8; 4]),
    /// Network id 2.
    Ipv6([u8; 16]),
    /// Network id 4: the ed25519 public key.
    TorV3([u8; 32]),
    /// Network id 5: sha256 of the destination.
    I2p([u8; 32]),
    /// Network id 6.
    Cjdns([u8; 16]),
}

impl AddrV2Addr {
    /// The BIP155 network id.
    pub const fn network_id(&self) -> u8 {
        match self {
            AddrV2Addr::Ipv4(_) => 1,
            AddrV2Addr::Ipv6(_) => 2,
            AddrV2Addr::TorV3(_) => 4,
            AddrV2Addr::I2p(_) => 5,
            AddrV2Addr::Cjdns(_) => 6,
        }
    }

    /// The address bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            AddrV2Addr::Ipv4(a) => a,
            AddrV2Addr::Ipv6(a) | AddrV2Addr::Cjdns(a) => a,
            AddrV2Addr::TorV3(a) | AddrV2Addr::I2p(a) => a,
        }
    }
}

/// One `addrv2` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrV2Entry {
    /// When the node was last seen, unix seconds.
    pub time: u32,
    /// Service bits (a CompactSize on the wire).
    pub services: u64,
    /// The address.
    pub addr: AddrV2Addr,
    /// Port (big-endian on the wire; 0 where the network has none).
    pub port: u16,
}

/// The entries of an `addrv2` that oni keeps, and how many it skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddrV2List {
    /// Kept entries, in wire order.
    pub entries: Vec<AddrV2Entry>,
    /// Entries skipped (unknown network, TorV2, disallowed IPv6 prefix); they still count toward
    /// the 1,000-entry limit.
    pub skipped: u32,
}

fn fixed<const N: usize>(b: &[u8]) -> Result<[u8; N], DecodeError> {
    b.try_into().map_err(|_| DecodeError::InvalidValue)
}

impl AddrV2List {
    /// Decodes an `addrv2` body (see the module docs for what is refused and what is skipped).
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.count(MAX_ADDR_ENTRIES, ADDRV2_ENTRY_MIN_BYTES)?;
        let mut entries = Vec::with_capacity(n);
        let mut skipped = 0;
        for _ in 0..n {
            let time = r.u32_le()?;
            let services = r.compact_size()?;
            let net = r.u8()?;
            let bytes = r.var_bytes(MAX_ADDRV2_ADDR_BYTES)?;
            let port = r.u16_be()?;
            let addr = match net {
                1 => Some(AddrV2Addr::Ipv4(fixed(bytes)?)),
                2 => {
                    let a: [u8; 16] = fixed(bytes)?;
                    let disallowed = a.starts_with(&IPV4_IN_IPV6_PREFIX)
                        || a.starts_with(&TORV2_IN_IPV6_PREFIX)
                        || a.starts_with(&INTERNAL_IN_IPV6_PREFIX);
                    (!disallowed).then_some(AddrV2Addr::Ipv6(a))
                }
                3 => {
                    fixed::<10>(bytes)?;
                    None
                }
                4 => Some(AddrV2Addr::TorV3(fixed(bytes)?)),
                5 => Some(AddrV2Addr::I2p(fixed(bytes)?)),
                6 => {
                    let a: [u8; 16] = fixed(bytes)?;
                    (a[0] == CJDNS_PREFIX).then_some(AddrV2Addr::Cjdns(a))
                }
                _ => None,
            };
            match addr {
                Some(addr) => entries.push(AddrV2Entry { time, services, addr, port }),
                None => skipped += 1,
            }
        }
        Ok(AddrV2List { entries, skipped })
    }

    /// Appends an `addrv2` body with the kept entries.
    pub fn encode(&self, out: &mut Vec<u8>) {
        write_compact_size(out, self.entries.len() as u64);
        for e in &self.entries {
            out.extend_from_slice(&e.time.to_le_bytes());
            write_compact_size(out, e.services);
            out.push(e.addr.network_id());
            let b = e.addr.bytes();
            write_compact_size(out, b.len() as u64);
            out.extend_from_slice(b);
            out.extend_from_slice(&e.port.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(addr: AddrV2Addr) -> AddrV2Entry {
        AddrV2Entry { time: 1_700_000_000, services: 1 << 11 | 9, addr, port: 8333 }
    }

    fn raw_entry(net: u8, addr: &[u8]) -> Vec<u8> {
        let mut e = vec![1, 0, 0, 0, 9, net];
        write_compact_size(&mut e, addr.len() as u64);
        e.extend_from_slice(addr);
        e.extend_from_slice(&[0x20, 0x8d]);
        e
    }

    fn body(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        write_compact_size(&mut out, entries.len() as u64);
        for e in entries {
            out.extend_from_slice(e);
        }
        out
    }

    #[test]
    fn addr_round_trips_at_its_limit() {
        let entries: Vec<AddrEntry> = (0..MAX_ADDR_ENTRIES as u32)
            .map(|i| AddrEntry {
                time: i,
                addr: NetAddr::from_socket(format!("10.0.{}.{}:8333", i / 256, i % 256).parse().unwrap(), 1),
            })
            .collect();
        let mut out = Vec::new();
        encode_addr(&entries, &mut out);
        let mut r = Reader::new(&out);
        assert_eq!(decode_addr(&mut r), Ok(entries));
        r.finish().unwrap();
    }

    #[test]
    fn one_thousand_and_one_addr_entries_are_too_many() {
        let mut out = Vec::new();
        encode_addr(&vec![AddrEntry { time: 0, addr: NetAddr::default() }; MAX_ADDR_ENTRIES + 1], &mut out);
        assert_eq!(decode_addr(&mut Reader::new(&out)), Err(DecodeError::TooManyEntries));
    }

    #[test]
    fn addrv2_round_trips_every_kept_network() {
        let l = AddrV2List {
            entries: vec![
                v2(AddrV2Addr::Ipv4([1, 2, 3, 4])),
                v2(AddrV2Addr::Ipv6([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])),
                v2(AddrV2Addr::TorV3([3; 32])),
                v2(AddrV2Addr::I2p([4; 32])),
                v2(AddrV2Addr::Cjdns([0xfc; 16])),
            ],
            skipped: 0,
        };
        let mut out = Vec::new();
        l.encode(&mut out);
        let mut r = Reader::new(&out);
        assert_eq!(AddrV2List::decode(&mut r), Ok(l));
        r.finish().unwrap();
    }

    #[test]
    fn one_thousand_and_one_addrv2_entries_are_too_many() {
        let e = raw_entry(1, &[1, 2, 3, 4]);
        let out = body(&vec![e; MAX_ADDR_ENTRIES + 1]);
        assert_eq!(AddrV2List::decode(&mut Reader::new(&out)), Err(DecodeError::TooManyEntries));
    }

    #[test]
    fn unknown_networks_and_torv2_are_skipped_not_refused() {
        let out = body(&[raw_entry(42, &[9; 7]), raw_entry(3, &[1; 10]), raw_entry(1, &[1, 2, 3, 4])]);
        let mut r = Reader::new(&out);
        let l = AddrV2List::decode(&mut r).unwrap();
        r.finish().unwrap();
        assert_eq!(l.skipped, 2);
        assert_eq!(l.entries.len(), 1);
        assert_eq!(l.entries[0].addr, AddrV2Addr::Ipv4([1, 2, 3, 4]));
        assert_eq!(l.entries[0].port, 8333);
    }

    #[test]
    fn ipv6_embedding_ipv4_or_tor_and_cjdns_outside_fc00_are_skipped() {
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        let mut tor = [0u8; 16];
        tor[..6].copy_from_slice(&TORV2_IN_IPV6_PREFIX);
        let l = AddrV2List::decode(&mut Reader::new(&body(&[raw_entry(2, &mapped), raw_entry(2, &tor)]))).unwrap();
        assert_eq!((l.entries.len(), l.skipped), (0, 2));
        let cjdns_outside_fc = [0xfd; 16];
        let l = AddrV2List::decode(&mut Reader::new(&body(&[raw_entry(6, &cjdns_outside_fc)]))).unwrap();
        assert_eq!((l.entries.len(), l.skipped), (0, 1));
    }

    #[test]
    fn a_known_network_with_the_wrong_length_is_invalid() {
        for (net, len) in [(1u8, 16usize), (2, 4), (3, 7), (4, 31), (5, 33), (6, 4)] {
            let out = body(&[raw_entry(net, &vec![0xfc; len])]);
            assert_eq!(AddrV2List::decode(&mut Reader::new(&out)), Err(DecodeError::InvalidValue), "net {net}");
        }
    }

    #[test]
    fn an_address_over_512_bytes_is_too_long_even_on_an_unknown_network() {
        let out = body(&[raw_entry(42, &[0; 513])]);
        assert_eq!(AddrV2List::decode(&mut Reader::new(&out)), Err(DecodeError::FieldTooLong));
        let ok = body(&[raw_entry(42, &[0; 512])]);
        assert_eq!(AddrV2List::decode(&mut Reader::new(&ok)).map(|l| l.skipped), Ok(1));
    }

    #[test]
    fn non_canonical_services_are_refused() {
        let e = vec![1, 0, 0, 0, 0xfd, 9, 0, 1, 4, 1, 2, 3, 4, 0x20, 0x8d];
        let out = body(&[e]);
        assert_eq!(AddrV2List::decode(&mut Reader::new(&out)), Err(DecodeError::NonCanonicalCompactSize));
    }

    #[test]
    fn a_truncated_addrv2_entry_is_refused() {
        let mut e = raw_entry(1, &[1, 2, 3, 4]);
        e.pop();
        assert_eq!(AddrV2List::decode(&mut Reader::new(&body(&[e]))), Err(DecodeError::Truncated));
    }
}
