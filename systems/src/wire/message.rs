//! Decoded messages: one enum, decoded from a borrowed payload by command, encoded straight into
//! the outgoing frame buffer.

use super::addr::{decode_addr, encode_addr, AddrEntry, AddrV2List};
use super::block::Block;
use super::compact::{BlockTxn, BlockTxnRequest, CmpctBlock};
use super::headers::{HeaderList, Locator};
use super::inv::InvList;
use super::reader::Reader;
use super::tx::Tx;
use super::version::Version;
use super::{checksum, Command, DecodeError, FrameHeader, Network, HEADER_LEN};

/// A decoded message. Variants follow Bitcoin Core's command names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// `version`.
    Version(Version),
    /// `verack`.
    Verack,
    /// `ping` with its nonce.
    Ping(u64),
    /// `pong` with the nonce it answers (0 when the payload is too short to carry one: Core treats
    /// both alike, cancelling its ping).
    Pong(u64),
    /// `sendheaders`.
    SendHeaders,
    /// `wtxidrelay`.
    WtxidRelay,
    /// `sendaddrv2`.
    SendAddrV2,
    /// `feefilter`, in sat per 1,000 vbytes.
    FeeFilter(i64),
    /// `sendcmpct`: high-bandwidth flag and compact block version.
    SendCmpct {
        /// Whether the peer wants unsolicited compact blocks: 0 or 1 (BIP152: any other value is
        /// a violation, kept as sent so the handshake can judge it as Core does).
        announce: u8,
        /// Compact block version (2 = witness).
        version: u64,
    },
    /// `getaddr`.
    GetAddr,
    /// `mempool`.
    Mempool,
    /// `inv`: announcements (unknown inventory types are kept; consumers skip them).
    Inv(InvList),
    /// `getdata`: requests.
    GetData(InvList),
    /// `notfound`: requested items the peer does not have.
    NotFound(InvList),
    /// `getheaders`.
    GetHeaders(Locator),
    /// `getblocks`.
    GetBlocks(Locator),
    /// `headers`, raw 80-byte headers.
    Headers(HeaderList),
    /// `addr`.
    Addr(Vec<AddrEntry>),
    /// `addrv2` (BIP155), with the entries oni keeps.
    AddrV2(AddrV2List),
    /// `tx`, raw bytes with ids.
    Tx(Tx),
    /// `block`, raw bytes with transaction spans.
    Block(Block),
    /// `filterload` (BIP37). oni offers no bloom filters, so only the command matters (Core
    /// disconnects before reading the payload).
    FilterLoad,
    /// `filteradd` (BIP37), as `filterload`.
    FilterAdd,
    /// `filterclear` (BIP37).
    FilterClear,
    /// `getcfilters` (BIP157). oni serves no compact filters: the request is read (Core reads it
    /// before refusing it; a short one is dropped) and its fields are not kept.
    GetCFilters,
    /// `getcfheaders` (BIP157), as `getcfilters`.
    GetCFHeaders,
    /// `getcfcheckpt` (BIP157), as `getcfilters`.
    GetCFCheckpt,
    /// `feature` (protocol 70017). oni speaks 70016, below it: only the command matters (Core
    /// disconnects a peer of a lower common version before reading the payload).
    Feature,
    /// `cmpctblock` (BIP152).
    CmpctBlock(CmpctBlock),
    /// `getblocktxn` (BIP152).
    GetBlockTxn(BlockTxnRequest),
    /// `blocktxn` (BIP152).
    BlockTxn(BlockTxn),
}

impl Message {
    /// The command this message travels under.
    pub fn command(&self) -> Command {
        match self {
            Message::Version(_) => Command::Version,
            Message::Verack => Command::Verack,
            Message::Ping(_) => Command::Ping,
            Message::Pong(_) => Command::Pong,
            Message::SendHeaders => Command::SendHeaders,
            Message::WtxidRelay => Command::WtxidRelay,
            Message::SendAddrV2 => Command::SendAddrV2,
            Message::FeeFilter(_) => Command::FeeFilter,
            Message::SendCmpct { .. } => Command::SendCmpct,
            Message::GetAddr => Command::GetAddr,
            Message::Mempool => Command::Mempool,
            Message::Inv(_) => Command::Inv,
            Message::GetData(_) => Command::GetData,
            Message::NotFound(_) => Command::NotFound,
            Message::GetHeaders(_) => Command::GetHeaders,
            Message::GetBlocks(_) => Command::GetBlocks,
            Message::Headers(_) => Command::Headers,
            Message::Addr(_) => Command::Addr,
            Message::AddrV2(_) => Command::AddrV2,
            Message::Tx(_) => Command::Tx,
            Message::Block(_) => Command::Block,
            Message::FilterLoad => Command::FilterLoad,
            Message::FilterAdd => Command::FilterAdd,
            Message::FilterClear => Command::FilterClear,
            Message::GetCFilters => Command::GetCFilters,
            Message::GetCFHeaders => Command::GetCFHeaders,
            Message::GetCFCheckpt => Command::GetCFCheckpt,
            Message::Feature => Command::Feature,
            Message::CmpctBlock(_) => Command::CmpctBlock,
            Message::GetBlockTxn(_) => Command::GetBlockTxn,
            Message::BlockTxn(_) => Command::BlockTxn,
        }
    }

    /// Decodes a payload whose checksum was already verified, as Core reads it: the message's
    /// fields from the start, bytes after them ignored. `Ok(None)` for commands that carry nothing
    /// oni acts on yet (the caller counts them as ignored). `tx` and `block` copy the payload;
    /// [`Message::decode_owned`] avoids that copy and says how many bytes were ignored.
    pub fn decode(command: Command, payload: &[u8]) -> Result<Option<Message>, DecodeError> {
        match command {
            Command::Tx | Command::Block | Command::CmpctBlock | Command::BlockTxn => {
                Self::decode_owned(command, payload.to_vec())
            }
            _ => Self::decode_fields(command, payload),
        }
        .map(|(m, _)| m)
    }

    /// Like [`Message::decode`], taking the payload buffer: `tx` and `block` keep it as their raw
    /// bytes instead of copying (the decode system owns each frame's payload, so it can pass it).
    /// Also returns the number of bytes after the message, which were ignored (Core ignores them
    /// too: it is how messages have grown fields without breaking older nodes).
    pub fn decode_owned(command: Command, payload: Vec<u8>) -> Result<(Option<Message>, usize), DecodeError> {
        match command {
            Command::Tx => Tx::decode_message(payload).map(|(t, rest)| (Some(Message::Tx(t)), rest)),
            Command::Block => Block::decode_message(payload).map(|(b, rest)| (Some(Message::Block(b)), rest)),
            Command::CmpctBlock => {
                CmpctBlock::decode_message(payload).map(|(b, rest)| (Some(Message::CmpctBlock(b)), rest))
            }
            Command::BlockTxn => BlockTxn::decode_message(payload).map(|(b, rest)| (Some(Message::BlockTxn(b)), rest)),
            _ => Self::decode_fields(command, &payload),
        }
    }

    fn decode_fields(command: Command, payload: &[u8]) -> Result<(Option<Message>, usize), DecodeError> {
        let mut r = Reader::new(payload);
        let msg = match command {
            Command::Version => Message::Version(Version::decode(&mut r)?),
            Command::Verack => Message::Verack,
            Command::Ping => Message::Ping(r.u64_le()?),
            Command::Pong if r.remaining() < 8 => {
                r.skip(r.remaining())?;
                Message::Pong(0)
            }
            Command::Pong => Message::Pong(r.u64_le()?),
            Command::SendHeaders => Message::SendHeaders,
            Command::WtxidRelay => Message::WtxidRelay,
            Command::SendAddrV2 => Message::SendAddrV2,
            Command::FeeFilter => Message::FeeFilter(r.i64_le()?),
            Command::SendCmpct => Message::SendCmpct { announce: r.u8()?, version: r.u64_le()? },
            Command::GetAddr => Message::GetAddr,
            Command::Mempool => Message::Mempool,
            Command::Inv => Message::Inv(InvList::decode(&mut r)?),
            Command::GetData => Message::GetData(InvList::decode(&mut r)?),
            Command::NotFound => Message::NotFound(InvList::decode(&mut r)?),
            Command::GetHeaders => Message::GetHeaders(Locator::decode(&mut r)?),
            Command::GetBlocks => Message::GetBlocks(Locator::decode(&mut r)?),
            Command::Headers => Message::Headers(HeaderList::decode(&mut r)?),
            Command::Addr => Message::Addr(decode_addr(&mut r)?),
            Command::AddrV2 => Message::AddrV2(AddrV2List::decode(&mut r)?),
            Command::FilterLoad => {
                r.skip(r.remaining())?;
                Message::FilterLoad
            }
            Command::FilterAdd => {
                r.skip(r.remaining())?;
                Message::FilterAdd
            }
            Command::FilterClear => Message::FilterClear,
            Command::Feature => {
                r.skip(r.remaining())?;
                Message::Feature
            }
            Command::GetCFilters => {
                r.skip(1 + 4 + 32)?;
                Message::GetCFilters
            }
            Command::GetCFHeaders => {
                r.skip(1 + 4 + 32)?;
                Message::GetCFHeaders
            }
            Command::GetCFCheckpt => {
                r.skip(1 + 32)?;
                Message::GetCFCheckpt
            }
            Command::GetBlockTxn => Message::GetBlockTxn(BlockTxnRequest::decode(&mut r)?),
            _ => return Ok((None, 0)),
        };
        Ok((Some(msg), r.remaining()))
    }

    /// Appends the payload (no header).
    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            Message::Version(v) => v.encode(out),
            Message::Ping(n) | Message::Pong(n) => out.extend_from_slice(&n.to_le_bytes()),
            Message::FeeFilter(f) => out.extend_from_slice(&f.to_le_bytes()),
            Message::SendCmpct { announce, version } => {
                out.push(*announce);
                out.extend_from_slice(&version.to_le_bytes());
            }
            Message::Verack
            | Message::SendHeaders
            | Message::WtxidRelay
            | Message::SendAddrV2
            | Message::GetAddr
            | Message::Mempool => {}
            Message::Inv(l) | Message::GetData(l) | Message::NotFound(l) => l.encode(out),
            Message::GetHeaders(l) | Message::GetBlocks(l) => l.encode(out),
            Message::Headers(h) => h.encode(out),
            Message::Addr(a) => encode_addr(a, out),
            Message::AddrV2(a) => a.encode(out),
            Message::Tx(t) => t.encode(out),
            Message::Block(b) => b.encode(out),
            Message::CmpctBlock(b) => b.encode(out),
            Message::GetBlockTxn(q) => q.encode(out),
            Message::BlockTxn(b) => b.encode(out),
            // Never sent by oni; tests send them: no filter, a zeroed request.
            Message::FilterLoad | Message::FilterAdd | Message::FilterClear | Message::Feature => {}
            Message::GetCFilters | Message::GetCFHeaders | Message::GetCFCheckpt => {
                out.resize(out.len() + self.command().max_payload() as usize, 0)
            }
        }
    }

    /// Appends a whole frame (header + payload) to `out`: the payload is written in place after a
    /// header-sized gap, then the header is filled in from it. Returns the frame's length.
    pub fn encode_frame(&self, network: Network, out: &mut Vec<u8>) -> usize {
        encode_frame_with(network, self.command(), out, |o| self.encode_payload(o))
    }

    /// The same frame with a zero checksum, for a transport that authenticates what it carries
    /// (BIP324 v2 drops the v1 header): hashing the payload would be wasted.
    pub fn encode_frame_unchecked(&self, network: Network, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        out.resize(start + HEADER_LEN, 0);
        self.encode_payload(out);
        let len = out.len() - start - HEADER_LEN;
        let mut header = [0u8; HEADER_LEN];
        FrameHeader::write(network, self.command(), len as u32, [0; 4], &mut header);
        out[start..start + HEADER_LEN].copy_from_slice(&header);
        out.len() - start
    }
}

/// Appends a frame whose payload is written by `write` straight into `out`.
pub fn encode_frame_with(
    network: Network,
    command: Command,
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>),
) -> usize {
    let start = out.len();
    out.resize(start + HEADER_LEN, 0);
    write(out);
    let len = out.len() - start - HEADER_LEN;
    let sum = checksum(&out[start + HEADER_LEN..]);
    let mut header = [0u8; HEADER_LEN];
    FrameHeader::write(network, command, len as u32, sum, &mut header);
    out[start..start + HEADER_LEN].copy_from_slice(&header);
    out.len() - start
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::version::NetAddr;

    fn round_trip(m: Message) {
        let mut frame = Vec::new();
        let n = m.encode_frame(Network::Regtest, &mut frame);
        assert_eq!(n, frame.len());
        let header = FrameHeader::parse(frame[..HEADER_LEN].try_into().unwrap(), Network::Regtest).unwrap();
        assert_eq!(header.command, m.command());
        assert_eq!(header.len as usize, frame.len() - HEADER_LEN);
        assert_eq!(header.checksum, checksum(&frame[HEADER_LEN..]));
        assert_eq!(Message::decode(header.command, &frame[HEADER_LEN..]), Ok(Some(m)));
    }

    #[test]
    fn handshake_messages_round_trip() {
        round_trip(Message::Version(Version {
            version: 70016,
            services: 9,
            timestamp: 1_700_000_000,
            receiver: NetAddr::from_socket("127.0.0.1:18444".parse().unwrap(), 1),
            sender: NetAddr::default(),
            nonce: 0x0102030405060708,
            user_agent: b"/oni:0.1.0/".as_slice().into(),
            start_height: 2100,
            relay: false,
        }));
        for m in [
            Message::Verack,
            Message::Ping(7),
            Message::Pong(u64::MAX),
            Message::SendHeaders,
            Message::WtxidRelay,
            Message::SendAddrV2,
            Message::FeeFilter(1000),
            Message::SendCmpct { announce: 0, version: 2 },
            Message::GetAddr,
            Message::Mempool,
        ] {
            round_trip(m);
        }
    }

    #[test]
    fn data_messages_round_trip() {
        use crate::wire::{
            AddrEntry, AddrV2Addr, AddrV2Entry, AddrV2List, Block, HeaderList, InvList, InvType, Locator, Tx,
        };
        use bitcoin::hashes::Hash;
        let mut inv = InvList::default();
        inv.push(InvType::WTX, [1; 32]);
        inv.push(InvType::WITNESS_BLOCK, [2; 32]);
        inv.push(InvType(77), [3; 32]);
        let locator = Locator {
            version: 70016,
            hashes: vec![bitcoin::BlockHash::from_byte_array([4; 32])],
            stop: bitcoin::BlockHash::all_zeros(),
        };
        let tx = crate::wire::tx::tests::sample_tx(2, 3, true, 5);
        let genesis = bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Regtest);
        for m in [
            Message::Inv(inv.clone()),
            Message::GetData(inv.clone()),
            Message::NotFound(InvList::default()),
            Message::GetHeaders(locator.clone()),
            Message::GetBlocks(locator),
            Message::Headers(HeaderList::from_headers(&[genesis.header])),
            Message::Headers(HeaderList::default()),
            Message::Addr(vec![AddrEntry { time: 9, addr: NetAddr::from_socket("1.2.3.4:8333".parse().unwrap(), 1) }]),
            Message::AddrV2(AddrV2List {
                entries: vec![AddrV2Entry { time: 9, services: 1, addr: AddrV2Addr::TorV3([7; 32]), port: 0 }],
                skipped: 0,
            }),
            Message::Tx(Tx::from_bitcoin(&tx).unwrap()),
            Message::Block(Block::from_bitcoin(&genesis).unwrap()),
        ] {
            let mut payload = Vec::new();
            m.encode_payload(&mut payload);
            assert_eq!(Message::decode_owned(m.command(), payload), Ok((Some(m.clone()), 0)));
            round_trip(m);
        }
    }

    #[test]
    fn bytes_after_a_message_are_ignored_and_counted_as_core_ignores_them() {
        use bitcoin::hashes::Hash;
        let genesis = bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Regtest);
        let tx = crate::wire::tx::tests::sample_tx(1, 1, false, 1);
        for m in [
            Message::Ping(9),
            Message::Inv(Default::default()),
            Message::GetHeaders(crate::wire::Locator {
                version: 1,
                hashes: vec![],
                stop: bitcoin::BlockHash::from_byte_array([0; 32]),
            }),
            Message::Headers(Default::default()),
            Message::Addr(vec![]),
            Message::AddrV2(Default::default()),
            Message::Tx(crate::wire::Tx::from_bitcoin(&tx).unwrap()),
            Message::Block(crate::wire::Block::from_bitcoin(&genesis).unwrap()),
        ] {
            let mut p = Vec::new();
            m.encode_payload(&mut p);
            p.extend_from_slice(&[0, 7, 7]);
            let name = m.command().name();
            assert_eq!(Message::decode(m.command(), &p), Ok(Some(m.clone())), "{name}");
            assert_eq!(Message::decode_owned(m.command(), p), Ok((Some(m), 3)), "{name}: three bytes ignored");
        }
    }

    #[test]
    fn a_version_may_end_after_any_optional_field_as_core_reads_it() {
        let full = Version {
            version: 70016,
            services: 9,
            timestamp: 5,
            receiver: NetAddr::default(),
            sender: NetAddr::default(),
            nonce: 77,
            user_agent: b"/x:1/".as_slice().into(),
            start_height: 12,
            relay: false,
        };
        let mut p = Vec::new();
        full.encode(&mut p);
        let decode = |n: usize| match Message::decode(Command::Version, &p[..n]) {
            Ok(Some(Message::Version(v))) => Ok(v),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        let ua_end = 80 + 1 + 5;
        // Ends after the receiver: no nonce (0: never ours), no user agent, height -1, relay.
        let v = decode(46).unwrap();
        assert_eq!((v.nonce, v.user_agent.len(), v.start_height, v.relay), (0, 0, -1, true));
        assert_eq!(decode(80).unwrap().nonce, 77);
        assert_eq!(decode(ua_end).unwrap().start_height, -1);
        assert_eq!(decode(ua_end + 4).unwrap().start_height, 12);
        assert_eq!(decode(p.len()).unwrap(), full);
        // A field begun must be whole.
        for n in [45, 47, 79, 81, ua_end - 1, ua_end + 2] {
            assert_eq!(decode(n), Err(DecodeError::Truncated), "{n} bytes");
        }
    }

    #[test]
    fn version_without_relay_byte_means_relay() {
        let mut p = Vec::new();
        Message::Version(Version {
            version: 70015,
            services: 1,
            timestamp: 0,
            receiver: NetAddr::default(),
            sender: NetAddr::default(),
            nonce: 1,
            user_agent: Default::default(),
            start_height: 0,
            relay: false,
        })
        .encode_payload(&mut p);
        p.pop();
        match Message::decode(Command::Version, &p) {
            Ok(Some(Message::Version(v))) => assert!(v.relay),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_truncated_payload_is_refused_but_a_short_pong_reads_as_nonce_zero() {
        assert_eq!(Message::decode(Command::Ping, &[1, 2, 3]), Err(DecodeError::Truncated));
        assert_eq!(Message::decode(Command::Pong, &[1, 2, 3]), Ok(Some(Message::Pong(0))));
        assert_eq!(Message::decode(Command::Pong, &[]), Ok(Some(Message::Pong(0))));
    }

    #[test]
    fn user_agent_over_256_bytes_is_refused() {
        let mut p = Vec::new();
        p.extend_from_slice(&70016i32.to_le_bytes());
        p.extend_from_slice(&[0u8; 8 + 8 + 26 + 26 + 8]);
        p.extend_from_slice(&[0xfd, 0x01, 0x01]);
        p.extend_from_slice(&[b'a'; 257]);
        assert_eq!(Message::decode(Command::Version, &p), Err(DecodeError::FieldTooLong));
    }
}
