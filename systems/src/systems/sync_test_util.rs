//! A scripted peer for the sync tests: it holds a header chain and the blocks behind it, answers
//! `getheaders` like Core (the 2,000 headers after the first locator hash it knows) and, when told
//! to, `getdata` for blocks.

use crate::chain::test_vectors::{chain_blocks, header_of, AFTER_FIXTURE_S};
use crate::components::ConnId;
use crate::harness::TestNode;
use crate::wire::headers::{block_hash, HeaderList, HEADER_BYTES};
use crate::wire::{Block, InvType, Locator, Message, MAX_HEADERS};
use ahash::AHashMap;
use bitcoin::hashes::Hash;
use bitcoin::BlockHash;

/// The scripted peer.
pub struct ChainPeer {
    pub conn: ConnId,
    pub headers: Vec<[u8; HEADER_BYTES]>,
    pub blocks: AHashMap<BlockHash, Vec<u8>>,
    pub answer_getdata: bool,
    pub genesis: BlockHash,
    /// Every message the node sent it, in order.
    pub seen: Vec<Message>,
}

impl ChainPeer {
    /// A peer holding the fixture chain (headers and blocks).
    pub fn fixture(node: &mut TestNode, addr: &str) -> Self {
        let conn = node.ready_inbound(addr);
        let genesis = node.world.resource::<crate::chain::ChainParams>().genesis.block_hash();
        let headers: Vec<_> = chain_blocks().iter().map(|b| header_of(b)).collect();
        let blocks = chain_blocks().iter().map(|b| (block_hash(&header_of(b)), b.clone())).collect();
        ChainPeer { conn, headers, blocks, answer_getdata: true, genesis, seen: vec![] }
    }

    /// The headers after the first locator hash this peer knows.
    pub fn answer(&self, loc: &Locator) -> HeaderList {
        let mut start = 0;
        for h in &loc.hashes {
            if *h == self.genesis {
                break;
            }
            if let Some(i) = self.headers.iter().position(|r| block_hash(r) == *h) {
                start = i + 1;
                break;
            }
        }
        let mut l = HeaderList::default();
        for r in self.headers.iter().skip(start).take(MAX_HEADERS) {
            l.push_raw(*r);
        }
        l
    }

    /// Gives the node its headers from genesis, as the node's first getheaders would ask (the
    /// first batch of 2,000).
    pub fn give_headers(&self, node: &mut TestNode) {
        let loc = Locator { version: 70016, hashes: vec![self.genesis], stop: BlockHash::all_zeros() };
        node.receive(self.conn, &Message::Headers(self.answer(&loc)));
    }

    /// Answers what the node sent until it asks nothing more (at most `rounds` exchanges).
    /// Returns the number of getdata messages seen.
    pub fn pump(&mut self, node: &mut TestNode, rounds: usize) -> usize {
        let mut getdatas = 0;
        for _ in 0..rounds {
            let msgs = node.sent_to(self.conn);
            if msgs.is_empty() {
                node.tick();
                if node.sent_bytes(self.conn) == 0 {
                    break;
                }
                continue;
            }
            for m in msgs {
                match &m {
                    Message::GetHeaders(loc) => {
                        let l = self.answer(loc);
                        node.receive(self.conn, &Message::Headers(l));
                    }
                    Message::GetData(list) => {
                        getdatas += 1;
                        if self.answer_getdata {
                            for e in list.iter().filter(|e| e.kind == InvType::WITNESS_BLOCK) {
                                if let Some(b) = self.blocks.get(&BlockHash::from_byte_array(e.hash)) {
                                    node.receive(self.conn, &Message::Block(Block::decode(b).unwrap()));
                                }
                            }
                        }
                    }
                    _ => {}
                }
                self.seen.push(m);
            }
        }
        getdatas
    }
}

/// A regtest node whose clock is just after the fixture was made.
pub fn fixture_node() -> TestNode {
    let mut node = TestNode::regtest();
    node.set_time_s(AFTER_FIXTURE_S);
    node
}
