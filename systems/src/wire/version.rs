//! The `version` message and the 26-byte network address it carries.

use super::reader::{write_compact_size, Reader};
use super::{DecodeError, MAX_USER_AGENT_BYTES};
use smallvec::SmallVec;

/// The newest protocol version oni speaks (Core 28–30 send the same).
pub const PROTOCOL_VERSION: i32 = 70016;
/// Oldest version we accept (Core accepts 31800; no modern peer is below 70015).
pub const MIN_PEER_PROTO_VERSION: i32 = 70001;
/// Version from which peers understand wtxidrelay (BIP339).
pub const WTXID_RELAY_VERSION: i32 = 70016;
/// Version from which peers understand sendheaders (BIP130).
pub const SENDHEADERS_VERSION: i32 = 70012;
/// Protocol version from which a peer speaks BIP152 compact blocks (Core's SHORT_IDS_BLOCKS_VERSION).
pub const SHORT_IDS_BLOCKS_VERSION: i32 = 70014;
/// Version from which peers understand feefilter (BIP133).
pub const FEEFILTER_VERSION: i32 = 70013;
/// The compact block version a `sendcmpct` must name to count (BIP152 version 2, with witnesses:
/// the only one Core takes).
pub const CMPCTBLOCKS_VERSION: u64 = 2;

/// A network address without a timestamp, as in `version` (services, IPv6-mapped IP, port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NetAddr {
    /// Service bits of that node, as the sender believes them.
    pub services: u64,
    /// IPv6, or IPv4-mapped IPv6.
    pub ip: [u8; 16],
    /// Port, big-endian on the wire.
    pub port: u16,
}

impl NetAddr {
    /// Size on the wire.
    pub const LEN: usize = 26;

    /// From a socket address (IPv4 becomes ::ffff:a.b.c.d).
    pub fn from_socket(addr: std::net::SocketAddr, services: u64) -> Self {
        let ip = match addr.ip() {
            std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            std::net::IpAddr::V6(v6) => v6.octets(),
        };
        NetAddr { services, ip, port: addr.port() }
    }

    /// Reads 26 bytes.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(NetAddr { services: r.u64_le()?, ip: r.array()?, port: r.u16_be()? })
    }

    /// Appends 26 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.services.to_le_bytes());
        out.extend_from_slice(&self.ip);
        out.extend_from_slice(&self.port.to_be_bytes());
    }
}

/// The user agent bytes, kept as bytes (no string is built while parsing); most fit inline.
pub type UserAgent = SmallVec<[u8; 32]>;

/// The `version` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// Protocol version.
    pub version: i32,
    /// Service bits the sender offers.
    pub services: u64,
    /// Sender's clock, unix seconds.
    pub timestamp: i64,
    /// How the sender sees the receiver.
    pub receiver: NetAddr,
    /// The sender's own address (Core sends an empty one).
    pub sender: NetAddr,
    /// Random per connection; a nonce equal to one of ours means we dialed ourselves.
    pub nonce: u64,
    /// BIP14 user agent, at most 256 bytes.
    pub user_agent: UserAgent,
    /// The sender's best height.
    pub start_height: i32,
    /// Whether the sender wants transaction announcements (BIP37); true when absent.
    pub relay: bool,
}

impl Version {
    /// Decodes a `version` payload as Core reads it: the fields up to the receiver's address are
    /// required; the payload may end before the sender's address and nonce, the user agent, the
    /// start height or the relay flag (each then has its default: no nonce, none, -1, true); a
    /// field begun must be whole.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut v = Version {
            version: r.i32_le()?,
            services: r.u64_le()?,
            timestamp: r.i64_le()?,
            receiver: NetAddr::decode(r)?,
            sender: NetAddr::default(),
            nonce: 0,
            user_agent: UserAgent::new(),
            start_height: -1,
            relay: true,
        };
        if r.remaining() != 0 {
            v.sender = NetAddr::decode(r)?;
            v.nonce = r.u64_le()?;
        }
        if r.remaining() != 0 {
            v.user_agent = UserAgent::from_slice(r.var_bytes(MAX_USER_AGENT_BYTES)?);
        }
        if r.remaining() != 0 {
            v.start_height = r.i32_le()?;
        }
        if r.remaining() != 0 {
            v.relay = r.u8()? != 0;
        }
        Ok(v)
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.services.to_le_bytes());
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        self.receiver.encode(out);
        self.sender.encode(out);
        out.extend_from_slice(&self.nonce.to_le_bytes());
        write_compact_size(out, self.user_agent.len() as u64);
        out.extend_from_slice(&self.user_agent);
        out.extend_from_slice(&self.start_height.to_le_bytes());
        out.push(self.relay as u8);
    }
}
