//! Splits a byte stream into frames, checking each header before its payload buffer exists. The
//! tokio reader and the simulator's in-memory pipes both use it, so framing is attacked the same way.

use super::{FrameHeader, HeaderError, Network, HEADER_LEN};

/// A delimited frame: a checked header and exactly `header.len` payload bytes (checksum unchecked)
/// — none for a command we do not speak, whose payload is skipped as it is read: it would only be
/// counted and dropped, so it is never held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFrame {
    /// The checked header.
    pub header: FrameHeader,
    /// The payload, allocated only after the header passed (empty for `Command::Unknown`).
    pub payload: Vec<u8>,
    /// Bytes read and authenticated but not kept (a BIP324 decoy's contents): they still count
    /// against the peer's receive credit and the tick's decode budget until the world takes the
    /// frame, so a peer's decoys are paced like its frames.
    pub skipped: usize,
}

impl RawFrame {
    /// A frame of `header` carrying `payload`.
    pub fn new(header: FrameHeader, payload: Vec<u8>) -> RawFrame {
        RawFrame { header, payload, skipped: 0 }
    }

    /// Bytes the frame took on the wire.
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + self.header.len as usize
    }

    /// Bytes it counts as held (header, kept payload, skipped contents): what receive bounds count
    /// and what the world gives back to the reader when it takes the frame.
    pub fn held_len(&self) -> usize {
        HEADER_LEN + self.payload.len() + self.skipped
    }

    /// Bytes it costs the tick's decode budget.
    pub fn work_len(&self) -> usize {
        self.payload.len() + self.skipped
    }
}

/// Whether a frame's payload is skipped rather than kept: nothing reads an unknown command's.
pub fn skips_payload(header: &FrameHeader) -> bool {
    header.command == super::Command::Unknown
}

/// Payload bytes reserved when a header passes; more is allocated only as bytes arrive.
pub const FIRST_CHUNK_BYTES: usize = 256 * 1024;

/// Incremental frame splitter. Holds at most one header and one bounded payload.
#[derive(Debug)]
pub struct FrameSplitter {
    network: Network,
    header_buf: [u8; HEADER_LEN],
    header_have: usize,
    /// The frame being read: its header, the payload kept so far, and the payload bytes seen.
    pending: Option<(FrameHeader, Vec<u8>, usize)>,
    failed: bool,
}

impl FrameSplitter {
    /// A splitter for one connection on `network`.
    pub fn new(network: Network) -> Self {
        FrameSplitter { network, header_buf: [0; HEADER_LEN], header_have: 0, pending: None, failed: false }
    }

    /// Consumes bytes from `input` until a frame completes (returned with the number of bytes used)
    /// or the input runs out (`Ok((None, input.len()))`). After an error the splitter stays failed:
    /// the connection must close.
    pub fn push(&mut self, input: &[u8]) -> (usize, Result<Option<RawFrame>, HeaderError>) {
        if self.failed {
            return (0, Err(HeaderError::BadMagic));
        }
        let mut used = 0;
        if self.pending.is_none() {
            let take = (HEADER_LEN - self.header_have).min(input.len());
            self.header_buf[self.header_have..self.header_have + take].copy_from_slice(&input[..take]);
            self.header_have += take;
            used += take;
            // Refuse bad magic from the first four bytes, as Core does for v2 attempts.
            if self.header_have >= 4 && self.header_buf[..4] != self.network.magic() {
                self.failed = true;
                return (used, Err(HeaderError::BadMagic));
            }
            if self.header_have < HEADER_LEN {
                return (used, Ok(None));
            }
            self.header_have = 0;
            match FrameHeader::parse(&self.header_buf, self.network) {
                // Room for what may arrive soon, not for what the header claims: the Vec grows with
                // the bytes that really come.
                Ok(h) => {
                    let room = if skips_payload(&h) { 0 } else { (h.len as usize).min(FIRST_CHUNK_BYTES) };
                    self.pending = Some((h, Vec::with_capacity(room), 0));
                }
                Err(e) => {
                    self.failed = true;
                    return (used, Err(e));
                }
            }
        }
        let Some((header, payload, seen)) = self.pending.as_mut() else {
            return (used, Ok(None));
        };
        let want = header.len as usize - *seen;
        let take = want.min(input.len() - used);
        if !skips_payload(header) {
            payload.extend_from_slice(&input[used..used + take]);
        }
        *seen += take;
        used += take;
        if *seen == header.len as usize {
            let (header, payload, _) = self.pending.take().unwrap_or_else(|| unreachable!());
            return (used, Ok(Some(RawFrame::new(header, payload))));
        }
        (used, Ok(None))
    }

    /// Capacity of the payload buffer currently held (the allocation a header caused).
    pub fn buffered_capacity(&self) -> usize {
        self.pending.as_ref().map_or(0, |(_, p, _)| p.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Command, Message};

    #[test]
    fn splits_frames_fed_one_byte_at_a_time() {
        let mut stream = Vec::new();
        Message::Ping(1).encode_frame(Network::Regtest, &mut stream);
        Message::Verack.encode_frame(Network::Regtest, &mut stream);
        let mut s = FrameSplitter::new(Network::Regtest);
        let mut frames = Vec::new();
        for b in &stream {
            let (used, r) = s.push(std::slice::from_ref(b));
            assert_eq!(used, 1);
            if let Some(f) = r.unwrap() {
                frames.push(f.header.command);
            }
        }
        assert_eq!(frames, vec![Command::Ping, Command::Verack]);
    }

    #[test]
    fn a_4_000_001_byte_length_is_refused_before_any_payload_allocation() {
        let mut h = [0u8; HEADER_LEN];
        FrameHeader::write(Network::Regtest, Command::Block, 0, [0; 4], &mut h);
        h[16..20].copy_from_slice(&4_000_001u32.to_le_bytes());
        let mut s = FrameSplitter::new(Network::Regtest);
        let mut input = h.to_vec();
        input.extend_from_slice(&[0u8; 1000]);
        let (used, r) = s.push(&input);
        assert_eq!(r, Err(HeaderError::Oversized));
        assert_eq!(used, HEADER_LEN, "not one payload byte was read");
        assert_eq!(s.buffered_capacity(), 0, "no payload buffer was allocated");
    }

    #[test]
    fn an_unknown_commands_payload_is_skipped_never_held_and_its_size_kept() {
        let mut h = [0u8; HEADER_LEN];
        FrameHeader::write(Network::Regtest, Command::Unknown, 4_000_000, [0; 4], &mut h);
        h[4..16].copy_from_slice(b"junkjunkjunk");
        let mut s = FrameSplitter::new(Network::Regtest);
        assert_eq!(s.push(&h), (HEADER_LEN, Ok(None)));
        assert_eq!(s.buffered_capacity(), 0);
        let (_, r) = s.push(&vec![0u8; 3_000_000]);
        assert_eq!(r, Ok(None));
        assert_eq!(s.buffered_capacity(), 0, "nothing kept while it streams by");
        let mut next = vec![0u8; 1_000_000];
        Message::Ping(3).encode_frame(Network::Regtest, &mut next);
        let (used, r) = s.push(&next);
        assert_eq!(used, 1_000_000, "exactly its payload");
        let f = r.unwrap().unwrap();
        assert!(f.payload.is_empty());
        assert_eq!((f.wire_len(), f.held_len()), (HEADER_LEN + 4_000_000, HEADER_LEN));
        let (_, r) = s.push(&next[used..]);
        assert_eq!(r.unwrap().unwrap().header.command, Command::Ping);
    }

    #[test]
    fn a_header_claiming_4_mb_reserves_one_chunk_until_bytes_arrive() {
        let mut h = [0u8; HEADER_LEN];
        FrameHeader::write(Network::Regtest, Command::Block, 4_000_000, [0; 4], &mut h);
        let mut s = FrameSplitter::new(Network::Regtest);
        let (used, r) = s.push(&h);
        assert_eq!((used, r), (HEADER_LEN, Ok(None)));
        assert!(s.buffered_capacity() <= FIRST_CHUNK_BYTES);
        let (_, r) = s.push(&vec![0u8; 300_000]);
        assert_eq!(r, Ok(None));
        assert!(s.buffered_capacity() < 4_000_000, "grows with the data, not the claim");
    }

    #[test]
    fn bad_magic_is_refused_after_four_bytes() {
        let mut s = FrameSplitter::new(Network::Regtest);
        let (used, r) = s.push(&[0x12, 0x34, 0x56, 0x78, 0x9a]);
        assert_eq!(r, Err(HeaderError::BadMagic));
        assert!(used <= 5, "refused before a whole header arrived");
        assert!(s.push(&[0]).1.is_err(), "stays failed");
    }
}
