//! Block download attackers and the peer they compete with. Both announce the first `blocks`
//! blocks of the regtest fixture chain as headers once the handshake is done and answer
//! `getheaders` from it. BlockServer answers `getdata` with the blocks; BlockStall takes the
//! requests and never delivers, so the node's window stops at the first block it holds: the
//! node must disconnect it after the stalling timeout and fetch those blocks from the server.

use super::fixture::{self, FixtureBlock};
use super::{Behaviour, BotIo, Handshaker, HsState};
use bitcoin::hashes::Hash;
use oni_systems::wire::{encode_frame_with, Command, HeaderList, InvType, Message, MAX_HEADERS};
use std::collections::{HashMap, VecDeque};

/// A peer holding the fixture chain; `serve` decides whether it delivers blocks.
#[derive(Debug)]
pub struct ChainPeer {
    serve: bool,
    blocks: &'static [FixtureBlock],
    by_hash: HashMap<[u8; 32], usize>,
    hs: Handshaker,
    started: bool,
    announced: bool,
    /// Frames that did not fit the send window yet.
    backlog: VecDeque<(Vec<u8>, u32)>,
}

impl ChainPeer {
    /// The scenario file's parameters (`kind` names it): 1 to 2,000 of the fixture chain's blocks,
    /// which must load.
    pub(crate) fn check(kind: &str, blocks: u32) -> Result<(), String> {
        if blocks == 0 || blocks > 2_000 {
            return Err(format!("{kind}: blocks must be in 1..=2000, got {blocks}"));
        }
        super::fixture_chain().map(|_| ())
    }
}

impl ChainPeer {
    /// A peer with the first `blocks` fixture blocks. The fixture was checked by the scenario's
    /// validation; if it is missing anyway the peer holds no blocks and announces nothing.
    pub fn new(blocks: u32, serve: bool) -> Self {
        let all = fixture::chain().unwrap_or(&[]);
        let blocks = &all[..(blocks as usize).min(all.len())];
        let by_hash = blocks.iter().enumerate().map(|(i, b)| (b.hash, i)).collect();
        ChainPeer {
            serve,
            blocks,
            by_hash,
            hs: Handshaker::default(),
            started: false,
            announced: false,
            backlog: VecDeque::new(),
        }
    }

    /// Headers after fixture index `from` (exclusive; `None` = from genesis), at most 2,000.
    fn headers_after(&self, from: Option<usize>) -> Message {
        let start = from.map_or(0, |i| i + 1);
        let mut list = HeaderList::default();
        for b in self.blocks.iter().skip(start).take(MAX_HEADERS) {
            list.push_raw(b.header);
        }
        Message::Headers(list)
    }

    fn queue(&mut self, msg: &Message, io: &BotIo) {
        let mut frame = Vec::new();
        msg.encode_frame(io.network, &mut frame);
        self.backlog.push_back((frame, 1));
    }

    fn flush(&mut self, io: &mut BotIo) {
        while let Some((frame, n)) = self.backlog.front() {
            if !io.write_raw(frame, *n) {
                break;
            }
            self.backlog.pop_front();
        }
    }
}

impl Behaviour for ChainPeer {
    fn tick(&mut self, io: &mut BotIo) {
        if !io.connected() {
            if !self.started {
                self.started = true;
                io.connect();
            }
            return;
        }
        if self.hs.state == HsState::Ready && !self.announced {
            self.announced = true;
            let m = self.headers_after(None);
            self.queue(&m, io);
        }
        self.flush(io);
    }

    fn on_connected(&mut self, io: &mut BotIo) {
        self.hs.start(io);
    }

    fn on_message(&mut self, msg: Message, io: &mut BotIo) {
        self.hs.on_message(&msg, io);
        match msg {
            Message::GetHeaders(loc) => {
                // The first locator hash we know (genesis or none: from the start).
                let from = loc.hashes.iter().find_map(|h| self.by_hash.get(h.as_byte_array()).copied());
                let m = self.headers_after(from);
                self.queue(&m, io);
            }
            Message::GetData(list) if self.serve => {
                for e in list.iter() {
                    if e.kind.base() != InvType::BLOCK {
                        continue;
                    }
                    if let Some(&i) = self.by_hash.get(&e.hash) {
                        let mut frame = Vec::with_capacity(self.blocks[i].bytes.len() + 24);
                        encode_frame_with(io.network, Command::Block, &mut frame, |o| {
                            o.extend_from_slice(&self.blocks[i].bytes)
                        });
                        self.backlog.push_back((frame, 1));
                    }
                }
            }
            // A staller takes the request and sits on it.
            _ => {}
        }
        self.flush(io);
    }
}
