//! The 24-byte frame header, parsed and checked before a single payload byte is read or allocated.

use super::{Command, HeaderError, Network, MAX_PAYLOAD_BYTES};

/// Size of a v1 frame header: magic(4) command(12) length(4) checksum(4).
pub const HEADER_LEN: usize = 24;

/// A checked frame header: the payload that follows is at most `len` bytes, within the command's bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The command, `Unknown` for a name we do not speak (or a malformed one).
    pub command: Command,
    /// The name was not printable ASCII followed only by NUL padding. Core drops such a frame and
    /// reads on (V1Transport: "Invalid message type"), so it is skipped like an unknown command
    /// and counted.
    pub bad_name: bool,
    /// Payload length in bytes.
    pub len: u32,
    /// First four bytes of sha256d(payload), checked by the decode system.
    pub checksum: [u8; 4],
    /// The transport proved the payload intact (a BIP324 packet's tag): there is no checksum.
    pub authenticated: bool,
}

impl FrameHeader {
    /// Parses and checks a header: magic, command characters, length against the absolute maximum
    /// and against the command's own bound. This is all the reader needs before allocating. A
    /// malformed name is not an error: the frame is `Unknown` with `bad_name` set.
    pub fn parse(bytes: &[u8; HEADER_LEN], network: Network) -> Result<FrameHeader, HeaderError> {
        if bytes[0..4] != network.magic() {
            return Err(HeaderError::BadMagic);
        }
        let mut name = [0u8; 12];
        name.copy_from_slice(&bytes[4..16]);
        let end = name.iter().position(|&b| b == 0).unwrap_or(12);
        let bad_name =
            end == 0 || !name[..end].iter().all(|b| (0x20..0x7f).contains(b)) || name[end..].iter().any(|&b| b != 0);
        let command = if bad_name { Command::Unknown } else { Command::from_padded(&name) };
        let len = u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        if len > MAX_PAYLOAD_BYTES || len > command.max_payload() {
            return Err(HeaderError::Oversized);
        }
        let checksum = [bytes[20], bytes[21], bytes[22], bytes[23]];
        Ok(FrameHeader { command, bad_name, len, checksum, authenticated: false })
    }

    /// Writes a header for `command` with the given payload length and checksum.
    pub fn write(network: Network, command: Command, len: u32, checksum: [u8; 4], out: &mut [u8; HEADER_LEN]) {
        out[0..4].copy_from_slice(&network.magic());
        out[4..16].copy_from_slice(&command.name_bytes());
        out[16..20].copy_from_slice(&len.to_le_bytes());
        out[20..24].copy_from_slice(&checksum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(magic: [u8; 4], name: &[u8], len: u32) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&magic);
        b[4..4 + name.len()].copy_from_slice(name);
        b[16..20].copy_from_slice(&len.to_le_bytes());
        b
    }

    #[test]
    fn accepts_a_ping_header() {
        let h = FrameHeader::parse(&raw(Network::Regtest.magic(), b"ping", 8), Network::Regtest).unwrap();
        assert_eq!(h.command, Command::Ping);
        assert_eq!(h.len, 8);
    }

    #[test]
    fn bad_magic_is_refused() {
        let r = FrameHeader::parse(&raw(Network::Main.magic(), b"ping", 8), Network::Regtest);
        assert_eq!(r, Err(HeaderError::BadMagic));
    }

    #[test]
    fn malformed_command_names_make_a_skipped_unknown_frame_as_core_drops_them() {
        for name in [&b"pi\xffg"[..], b"ping\0x", b""] {
            let h = FrameHeader::parse(&raw(Network::Regtest.magic(), name, 8), Network::Regtest).unwrap();
            assert_eq!((h.command, h.bad_name, h.len), (Command::Unknown, true, 8), "{name:?}");
        }
        let h = FrameHeader::parse(&raw(Network::Regtest.magic(), b"ping", 8), Network::Regtest).unwrap();
        assert!(!h.bad_name);
        // The length bound still holds for them.
        let r = FrameHeader::parse(&raw(Network::Regtest.magic(), b"\x01", 4_000_001), Network::Regtest);
        assert_eq!(r, Err(HeaderError::Oversized));
    }

    #[test]
    fn length_over_absolute_maximum_is_refused() {
        let r = FrameHeader::parse(&raw(Network::Regtest.magic(), b"block", 4_000_001), Network::Regtest);
        assert_eq!(r, Err(HeaderError::Oversized));
        let r = FrameHeader::parse(&raw(Network::Regtest.magic(), b"newthing", 4_000_001), Network::Regtest);
        assert_eq!(r, Err(HeaderError::Oversized));
    }

    #[test]
    fn length_over_command_bound_is_refused() {
        let r = FrameHeader::parse(&raw(Network::Regtest.magic(), b"verack", 1), Network::Regtest);
        assert_eq!(r, Err(HeaderError::Oversized));
        let r = FrameHeader::parse(&raw(Network::Regtest.magic(), b"ping", 9), Network::Regtest);
        assert_eq!(r, Err(HeaderError::Oversized));
    }

    #[test]
    fn unknown_well_formed_command_is_accepted_as_unknown() {
        let h = FrameHeader::parse(&raw(Network::Regtest.magic(), b"sendtemplate", 10), Network::Regtest).unwrap();
        assert_eq!(h.command, Command::Unknown);
    }
}
