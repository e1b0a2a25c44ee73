//! Frames shared by the decode benches: headers(2000) and a ~1 MB block built from the
//! regtest-core fixture's real transactions, inv(50000), ping; and oni's full decode path.

use oni_systems::wire::{
    checksum, Block, FrameHeader, HeaderList, InvList, InvType, Inventory, Message, Network, HEADER_LEN,
};

/// The network the frames are built for.
pub const NET: Network = Network::Regtest;

fn unhex(s: &str) -> Vec<u8> {
    let nib = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => panic!("not hex"),
    };
    s.as_bytes().chunks(2).map(|p| (nib(p[0]) << 4) | nib(p[1])).collect()
}

fn fixture_blocks() -> Vec<bitcoin::Block> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/regtest-core/chain.hex");
    let text = std::fs::read_to_string(path).expect("fixture chain.hex");
    text.lines().map(|l| bitcoin::consensus::deserialize(&unhex(l)).expect("fixture block")).collect()
}

fn frame(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode_frame(NET, &mut out);
    out
}

/// A block of about `target_bytes` from the fixture's transactions (real scripts and witnesses).
fn big_block(blocks: &[bitcoin::Block], target_bytes: usize) -> bitcoin::Block {
    let mut b = blocks[blocks.len() - 1].clone();
    b.txdata.truncate(1);
    let mut size = bitcoin::consensus::serialize(&b).len();
    for tx in blocks.iter().flat_map(|b| b.txdata.iter().skip(1)).cycle() {
        if size >= target_bytes {
            break;
        }
        size += bitcoin::consensus::serialize(tx).len();
        b.txdata.push(tx.clone());
    }
    b.header.merkle_root = b.compute_merkle_root().expect("non-empty");
    b
}

/// (name, frame) for each benched message.
pub fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let blocks = fixture_blocks();
    let headers: Vec<_> = blocks.iter().take(2000).map(|b| b.header).collect();
    let inv: InvList = (0..50_000u32)
        .map(|i| {
            let mut hash = [0u8; 32];
            hash[..4].copy_from_slice(&i.to_le_bytes());
            hash[31] = 0x5a;
            Inventory { kind: InvType::WTX, hash }
        })
        .collect();
    let big = big_block(&blocks, 1_000_000);
    vec![
        ("headers_2000", frame(&Message::Headers(HeaderList::from_headers(&headers)))),
        ("inv_50000", frame(&Message::Inv(inv))),
        ("block_1mb", frame(&Message::Block(Block::from_bitcoin(&big).expect("big block encodes")))),
        ("ping", frame(&Message::Ping(0x0123_4567_89ab_cdef))),
    ]
}

/// oni's whole path for one frame already in memory: header checks, checksum, payload decode.
#[inline(never)]
pub fn oni_decode(frame: &[u8]) -> Option<Message> {
    let header = FrameHeader::parse(frame[..HEADER_LEN].try_into().ok()?, NET).ok()?;
    let payload = &frame[HEADER_LEN..];
    if checksum(payload) != header.checksum {
        return None;
    }
    Message::decode(header.command, payload).ok()?
}
