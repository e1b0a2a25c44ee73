//! Cross-checks against rust-bitcoin's p2p codec: a frame rust-bitcoin encodes decodes with ours to
//! the expected message, ours encodes to the very same bytes, and rust-bitcoin decodes ours back.

use super::*;
use bitcoin::hashes::Hash;
use bitcoin::p2p::address::{AddrV2 as BAddrV2, AddrV2Message, Address};
use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
use bitcoin::p2p::message_blockdata::{GetHeadersMessage, Inventory as BInv};
use bitcoin::p2p::ServiceFlags;
use bitcoin::{BlockHash, Txid, Wtxid};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

const NET: Network = Network::Regtest;

fn theirs_frame(m: &NetworkMessage) -> Vec<u8> {
    bitcoin::consensus::serialize(&RawNetworkMessage::new(NET.to_bitcoin().magic(), m.clone()))
}

/// Our full decode path: header, checksum, payload.
fn ours_from_frame(frame: &[u8]) -> Result<Option<Message>, DecodeError> {
    let header = FrameHeader::parse(frame[..HEADER_LEN].try_into().unwrap(), NET).unwrap();
    assert_eq!(header.len as usize, frame.len() - HEADER_LEN);
    if checksum(&frame[HEADER_LEN..]) != header.checksum {
        return Err(DecodeError::BadChecksum);
    }
    Message::decode(header.command, &frame[HEADER_LEN..])
}

fn cross(theirs: NetworkMessage, ours: Message) {
    let frame = theirs_frame(&theirs);
    assert_eq!(ours_from_frame(&frame), Ok(Some(ours.clone())), "{}", ours.command().name());
    let mut mine = Vec::new();
    ours.encode_frame(NET, &mut mine);
    assert_eq!(mine, frame, "{}: same bytes", ours.command().name());
    let back: RawNetworkMessage = bitcoin::consensus::deserialize(&mine).unwrap();
    assert_eq!(back.payload(), &theirs);
}

#[test]
fn inv_getdata_notfound_match_rust_bitcoin() {
    let theirs = vec![
        BInv::Transaction(Txid::from_byte_array([1; 32])),
        BInv::Block(BlockHash::from_byte_array([2; 32])),
        BInv::CompactBlock(BlockHash::from_byte_array([4; 32])),
        BInv::WTx(Wtxid::from_byte_array([5; 32])),
        BInv::WitnessTransaction(Txid::from_byte_array([6; 32])),
        BInv::WitnessBlock(BlockHash::from_byte_array([7; 32])),
        BInv::Unknown { inv_type: 3, hash: [3; 32] },
        BInv::Unknown { inv_type: 0xdead, hash: [8; 32] },
    ];
    let mut ours = InvList::default();
    for (t, h) in [
        (InvType::TX, 1u8),
        (InvType::BLOCK, 2),
        (InvType::CMPCT_BLOCK, 4),
        (InvType::WTX, 5),
        (InvType::WITNESS_TX, 6),
        (InvType::WITNESS_BLOCK, 7),
        (InvType::FILTERED_BLOCK, 3),
        (InvType(0xdead), 8),
    ] {
        ours.push(t, [h; 32]);
    }
    cross(NetworkMessage::Inv(theirs.clone()), Message::Inv(ours.clone()));
    cross(NetworkMessage::GetData(theirs.clone()), Message::GetData(ours.clone()));
    cross(NetworkMessage::NotFound(theirs), Message::NotFound(ours));
}

#[test]
fn headers_match_rust_bitcoin_on_real_headers() {
    let blocks = super::fixture_tests::chain_blocks();
    let theirs: Vec<bitcoin::block::Header> =
        blocks.iter().take(MAX_HEADERS).map(|b| b.to_bitcoin().unwrap().header).collect();
    cross(NetworkMessage::Headers(theirs.clone()), Message::Headers(HeaderList::from_headers(&theirs)));
}

#[test]
fn getheaders_and_getblocks_match_rust_bitcoin() {
    let hashes: Vec<BlockHash> = (0..MAX_LOCATOR_HASHES as u8).map(|i| BlockHash::from_byte_array([i; 32])).collect();
    let stop = BlockHash::from_byte_array([0xaa; 32]);
    let theirs = GetHeadersMessage { version: 70016, locator_hashes: hashes.clone(), stop_hash: stop };
    let ours = Locator { version: 70016, hashes: hashes.clone(), stop };
    cross(NetworkMessage::GetHeaders(theirs), Message::GetHeaders(ours.clone()));
    let theirs =
        bitcoin::p2p::message_blockdata::GetBlocksMessage { version: 70016, locator_hashes: hashes, stop_hash: stop };
    cross(NetworkMessage::GetBlocks(theirs), Message::GetBlocks(ours));
}

#[test]
fn addr_matches_rust_bitcoin() {
    let sockets: Vec<SocketAddr> =
        vec!["1.2.3.4:8333".parse().unwrap(), "[2001:db8::7]:18444".parse().unwrap(), "10.9.8.7:1".parse().unwrap()];
    let theirs: Vec<(u32, Address)> = sockets
        .iter()
        .enumerate()
        .map(|(i, s)| (1_700_000_000 + i as u32, Address::new(s, ServiceFlags::from(9 + i as u64))))
        .collect();
    let ours: Vec<AddrEntry> = sockets
        .iter()
        .enumerate()
        .map(|(i, s)| AddrEntry { time: 1_700_000_000 + i as u32, addr: NetAddr::from_socket(*s, 9 + i as u64) })
        .collect();
    cross(NetworkMessage::Addr(theirs), Message::Addr(ours));
}

#[test]
fn addrv2_matches_rust_bitcoin() {
    let ip6: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let cjdns: Ipv6Addr = "fc00::1".parse().unwrap();
    let services = 1u64 << 11 | 1 << 3 | 1;
    let theirs: Vec<AddrV2Message> = [
        BAddrV2::Ipv4(Ipv4Addr::new(1, 2, 3, 4)),
        BAddrV2::Ipv6(ip6),
        BAddrV2::TorV3([3; 32]),
        BAddrV2::I2p([4; 32]),
        BAddrV2::Cjdns(cjdns),
    ]
    .into_iter()
    .map(|addr| AddrV2Message { time: 1_700_000_000, services: ServiceFlags::from(services), addr, port: 8333 })
    .collect();
    let ours = AddrV2List {
        entries: [
            AddrV2Addr::Ipv4([1, 2, 3, 4]),
            AddrV2Addr::Ipv6(ip6.octets()),
            AddrV2Addr::TorV3([3; 32]),
            AddrV2Addr::I2p([4; 32]),
            AddrV2Addr::Cjdns(cjdns.octets()),
        ]
        .into_iter()
        .map(|addr| AddrV2Entry { time: 1_700_000_000, services, addr, port: 8333 })
        .collect(),
        skipped: 0,
    };
    cross(NetworkMessage::AddrV2(theirs), Message::AddrV2(ours));
}

#[test]
fn addrv2_from_rust_bitcoin_with_unknown_and_torv2_entries_skips_them() {
    let entry = |addr| AddrV2Message { time: 5, services: ServiceFlags::NETWORK, addr, port: 1 };
    let theirs = NetworkMessage::AddrV2(vec![
        entry(BAddrV2::Unknown(42, vec![1, 2, 3])),
        entry(BAddrV2::TorV2([9; 10])),
        entry(BAddrV2::Ipv4(Ipv4Addr::new(8, 8, 4, 4))),
    ]);
    let Ok(Some(Message::AddrV2(l))) = ours_from_frame(&theirs_frame(&theirs)) else { panic!("decodes") };
    assert_eq!(l.skipped, 2);
    assert_eq!(l.entries, vec![AddrV2Entry { time: 5, services: 1, addr: AddrV2Addr::Ipv4([8, 8, 4, 4]), port: 1 }]);
}

#[test]
fn tx_and_block_match_rust_bitcoin_on_real_segwit_blocks() {
    let blocks = super::fixture_tests::chain_blocks();
    let mut segwit_txs = 0;
    for b in blocks.iter().rev().take(20) {
        let theirs = b.to_bitcoin().unwrap();
        cross(NetworkMessage::Block(theirs.clone()), Message::Block(b.clone()));
        for (i, tx) in theirs.txdata.iter().enumerate() {
            let ours = Tx::decode(b.tx_bytes(i).unwrap()).unwrap();
            assert_eq!(ours.txid(), tx.compute_txid());
            assert_eq!(ours.wtxid(), tx.compute_wtxid());
            segwit_txs += ours.span().has_witness() as usize;
            cross(NetworkMessage::Tx(tx.clone()), Message::Tx(ours));
        }
    }
    assert!(segwit_txs > 20, "the sample holds segwit transactions ({segwit_txs})");
}
