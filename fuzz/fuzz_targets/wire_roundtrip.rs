//! Target 4: the other direction of target 1 — structured `addr`, `addrv2`, `version`, `inv`,
//! `getdata`, `headers`, `getheaders`, `getblocks` and BIP152 (`cmpctblock`, `getblocktxn`,
//! `blocktxn`) values built from the input, encoded into a frame, split and decoded: the frame
//! passes its header checks and the value comes back equal. Lists run up to each command's limit,
//! so every limit's edge is encoded and read back.

#![no_main]

use bitcoin::hashes::Hash;
use bitcoin::BlockHash;
use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use oni_systems::wire::compact::MAX_COMPACT_TXS;
use oni_systems::wire::reader::write_compact_size;
use oni_systems::wire::version::UserAgent;
use oni_systems::wire::{
    AddrEntry, AddrV2Addr, AddrV2Entry, AddrV2List, BlockTxn, BlockTxnRequest, CmpctBlock, FrameSplitter, HeaderList,
    InvList, InvType, Locator, Message, NetAddr, Network, Version, MAX_ADDR_ENTRIES, MAX_HEADERS, MAX_INV_ENTRIES,
    MAX_LOCATOR_HASHES, MAX_USER_AGENT_BYTES,
};

#[derive(Arbitrary, Debug)]
enum Shape {
    Addr(u16),
    AddrV2(u16),
    Version { relay: bool, user_agent_len: u16 },
    Inv(u16),
    GetData(u16),
    Headers(u16),
    GetHeaders(u8),
    GetBlocks(u8),
    CmpctBlock { short_ids: u16, prefilled: u8 },
    GetBlockTxn(u16),
    BlockTxn(u8),
}

/// A small transaction whose bytes vary with the input (one input, one output, maybe a witness).
fn small_tx(u: &mut Unstructured) -> arbitrary::Result<Vec<u8>> {
    let witness: bool = u.arbitrary()?;
    let mut t = vec![2, 0, 0, 0];
    if witness {
        t.extend_from_slice(&[0, 1]);
    }
    t.push(1);
    t.extend_from_slice(&[u.arbitrary::<u8>()?; 36]);
    t.extend_from_slice(&[0, 0xff, 0xff, 0xff, 0xff, 1]);
    t.extend_from_slice(&u.arbitrary::<u64>()?.to_le_bytes());
    t.extend_from_slice(&[1, 0x51]);
    if witness {
        t.extend_from_slice(&[1, 1, u.arbitrary()?]);
    }
    t.extend_from_slice(&[0, 0, 0, 0]);
    Ok(t)
}

fn net_addr(u: &mut Unstructured) -> arbitrary::Result<NetAddr> {
    Ok(NetAddr { services: u.arbitrary()?, ip: u.arbitrary()?, port: u.arbitrary()? })
}

fn hash(u: &mut Unstructured) -> arbitrary::Result<[u8; 32]> {
    // Mostly cheap repeated bytes, so long lists do not need long inputs.
    Ok([u.arbitrary::<u8>()?; 32])
}

fn locator(u: &mut Unstructured, n: u8) -> arbitrary::Result<Locator> {
    let n = n as usize % (MAX_LOCATOR_HASHES + 1);
    let hashes = (0..n).map(|_| hash(u).map(BlockHash::from_byte_array)).collect::<Result<_, _>>()?;
    Ok(Locator { version: u.arbitrary()?, hashes, stop: BlockHash::from_byte_array(hash(u)?) })
}

fn inv(u: &mut Unstructured, n: u16) -> arbitrary::Result<InvList> {
    let n = n as usize % (MAX_INV_ENTRIES + 1);
    let mut list = InvList::with_capacity(n);
    for _ in 0..n {
        list.push(InvType(u.arbitrary()?), hash(u)?);
    }
    Ok(list)
}

/// An addrv2 address oni keeps (the decoder drops the others, so only these round trip).
fn kept_addrv2(u: &mut Unstructured) -> arbitrary::Result<AddrV2Addr> {
    Ok(match u.int_in_range(0..=4u8)? {
        0 => AddrV2Addr::Ipv4(u.arbitrary()?),
        1 => {
            let mut a: [u8; 16] = u.arbitrary()?;
            a[0] = 0x20; // global unicast: none of the skipped prefixes
            AddrV2Addr::Ipv6(a)
        }
        2 => AddrV2Addr::TorV3(u.arbitrary()?),
        3 => AddrV2Addr::I2p(u.arbitrary()?),
        _ => {
            let mut a: [u8; 16] = u.arbitrary()?;
            a[0] = 0xfc;
            AddrV2Addr::Cjdns(a)
        }
    })
}

fn build(u: &mut Unstructured) -> arbitrary::Result<Message> {
    Ok(match u.arbitrary::<Shape>()? {
        Shape::Addr(n) => {
            let n = n as usize % (MAX_ADDR_ENTRIES + 1);
            Message::Addr(
                (0..n)
                    .map(|_| Ok(AddrEntry { time: u.arbitrary()?, addr: net_addr(u)? }))
                    .collect::<arbitrary::Result<_>>()?,
            )
        }
        Shape::AddrV2(n) => {
            let n = n as usize % (MAX_ADDR_ENTRIES + 1);
            let entries = (0..n)
                .map(|_| {
                    Ok(AddrV2Entry {
                        time: u.arbitrary()?,
                        services: u.arbitrary()?,
                        addr: kept_addrv2(u)?,
                        port: u.arbitrary()?,
                    })
                })
                .collect::<arbitrary::Result<_>>()?;
            Message::AddrV2(AddrV2List { entries, skipped: 0 })
        }
        Shape::Version { relay, user_agent_len } => {
            let len = user_agent_len as usize % (MAX_USER_AGENT_BYTES + 1);
            let agent: Vec<u8> = (0..len).map(|_| u.arbitrary()).collect::<arbitrary::Result<_>>()?;
            Message::Version(Version {
                version: u.arbitrary()?,
                services: u.arbitrary()?,
                timestamp: u.arbitrary()?,
                receiver: net_addr(u)?,
                sender: net_addr(u)?,
                nonce: u.arbitrary()?,
                user_agent: UserAgent::from_slice(&agent),
                start_height: u.arbitrary()?,
                relay,
            })
        }
        Shape::Inv(n) => Message::Inv(inv(u, n)?),
        Shape::GetData(n) => Message::GetData(inv(u, n)?),
        Shape::Headers(n) => {
            let n = n as usize % (MAX_HEADERS + 1);
            let mut list = HeaderList::default();
            for _ in 0..n {
                let mut raw = [u.arbitrary::<u8>()?; 80];
                raw[..4].copy_from_slice(&u.arbitrary::<[u8; 4]>()?);
                list.push_raw(raw);
            }
            Message::Headers(list)
        }
        Shape::GetHeaders(n) => Message::GetHeaders(locator(u, n)?),
        Shape::GetBlocks(n) => Message::GetBlocks(locator(u, n)?),
        Shape::CmpctBlock { short_ids, prefilled } => {
            // Up to the 65,535-transaction limit in all.
            let n = short_ids as usize % (MAX_COMPACT_TXS + 1 - prefilled as usize);
            let mut p = vec![u.arbitrary::<u8>()?; 80];
            p.extend_from_slice(&u.arbitrary::<u64>()?.to_le_bytes());
            write_compact_size(&mut p, n as u64);
            let id = u.arbitrary::<u64>()?.to_le_bytes();
            for i in 0..n {
                p.extend_from_slice(&id[..5]);
                p.push(i as u8);
            }
            write_compact_size(&mut p, u64::from(prefilled));
            for _ in 0..prefilled {
                write_compact_size(&mut p, u64::from(u.arbitrary::<u16>()?));
                p.extend_from_slice(&small_tx(u)?);
            }
            let (b, rest) = CmpctBlock::decode_message(p).expect("a well-formed compact block decodes");
            assert_eq!(rest, 0);
            assert_eq!(b.tx_count(), n + prefilled as usize);
            Message::CmpctBlock(b)
        }
        Shape::GetBlockTxn(n) => {
            // Up to every index of the largest block, strictly increasing.
            let mut indexes: Vec<u16> = (0..n).map(|_| u.arbitrary()).collect::<arbitrary::Result<_>>()?;
            if u.arbitrary::<bool>()? {
                indexes = (0..=u16::MAX).collect();
            }
            indexes.sort_unstable();
            indexes.dedup();
            Message::GetBlockTxn(BlockTxnRequest { block_hash: BlockHash::from_byte_array(hash(u)?), indexes })
        }
        Shape::BlockTxn(n) => {
            let txs: Vec<Vec<u8>> = (0..n).map(|_| small_tx(u)).collect::<arbitrary::Result<_>>()?;
            let b = BlockTxn::from_txs(BlockHash::from_byte_array(hash(u)?), txs.iter().map(|t| t.as_slice()))
                .expect("well-formed transactions");
            Message::BlockTxn(b)
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(message) = build(&mut u) else { return };
    let mut stream = Vec::new();
    message.encode_frame(Network::Regtest, &mut stream);
    let mut splitter = FrameSplitter::new(Network::Regtest);
    let (used, frame) = splitter.push(&stream);
    let frame = frame.expect("a frame oni encodes passes its own header checks").expect("whole frame given");
    assert_eq!(used, stream.len());
    assert_eq!(frame.header.command, message.command());
    let decoded = Message::decode(frame.header.command, &frame.payload);
    assert_eq!(decoded, Ok(Some(message)), "a value did not survive encode then decode");
});
