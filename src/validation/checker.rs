//! The structure-only validator: enough of a chain for the scheduler and the simulator, none of
//! the cost of real consensus. It checks what can be checked from the block alone — the header
//! hashes to what was asked for, proof of work meets the header's own bits, merkle root and witness
//! commitment match — plus "its parent is known", and keeps the branch with most work active,
//! reporting reorgs like the kernel does. It does not check scripts, amounts or retargets, and it
//! keeps everything in memory: never a node's validator.

use super::{BlockValidator, HeaderInfo, RejectReason, ValidatedTip, ValidationEvent, ValidatorError};
use bitcoin::block::Header;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::pow::Work;
use bitcoin::{Block, BlockHash};
use oni_systems::wire::Network;
use std::collections::HashMap;

struct Entry {
    header: Header,
    height: u32,
    chainwork: Work,
    raw: Vec<u8>,
}

/// In-memory block tree with structure checks; see the module docs for what it does not check.
pub struct StructureChecker {
    index: HashMap<BlockHash, Entry>,
    /// Hashes of the active chain by height (index 0 = genesis).
    active: Vec<BlockHash>,
}

impl StructureChecker {
    /// A tree holding only the network's genesis block.
    pub fn new(network: Network) -> Self {
        let genesis = bitcoin::constants::genesis_block(network.to_bitcoin());
        let hash = genesis.block_hash();
        let entry =
            Entry { header: genesis.header, height: 0, chainwork: genesis.header.work(), raw: serialize(&genesis) };
        StructureChecker { index: HashMap::from([(hash, entry)]), active: vec![hash] }
    }

    fn check(&self, hash: BlockHash, raw: &[u8]) -> Result<Block, RejectReason> {
        let block: Block = deserialize(raw).map_err(|_| RejectReason::Undecodable)?;
        if block.block_hash() != hash {
            return Err(RejectReason::HashMismatch);
        }
        if block.header.validate_pow(block.header.target()).is_err() {
            return Err(RejectReason::InvalidHeader);
        }
        if !block.check_merkle_root() || !block.check_witness_commitment() {
            return Err(RejectReason::Mutated);
        }
        if !self.index.contains_key(&block.header.prev_blockhash) {
            return Err(RejectReason::MissingPrev);
        }
        Ok(block)
    }

    fn entry(&self, hash: &BlockHash) -> &Entry {
        // Every hash in `active` and every parent of an entry is in the index by construction.
        &self.index[hash]
    }

    /// Make `new_tip` the active tip, disconnecting down to the fork point and connecting up.
    fn activate(&mut self, new_tip: BlockHash, events: &mut Vec<ValidationEvent>) {
        let mut branch = Vec::new();
        let mut cursor = new_tip;
        loop {
            let entry = self.entry(&cursor);
            if self.active.get(entry.height as usize) == Some(&cursor) {
                break;
            }
            branch.push(cursor);
            cursor = entry.header.prev_blockhash;
        }
        let fork_height = self.entry(&cursor).height as usize;
        while self.active.len() > fork_height + 1 {
            let height = (self.active.len() - 1) as u32;
            if let Some(hash) = self.active.pop() {
                events.push(ValidationEvent::Disconnected { hash, height });
            }
        }
        for hash in branch.into_iter().rev() {
            let height = self.active.len() as u32;
            self.active.push(hash);
            events.push(ValidationEvent::Connected { hash, height });
        }
    }
}

impl BlockValidator for StructureChecker {
    fn submit(&mut self, hash: BlockHash, raw: &[u8], events: &mut Vec<ValidationEvent>) {
        if self.index.contains_key(&hash) {
            events.push(ValidationEvent::AlreadyKnown { hash });
            return;
        }
        let block = match self.check(hash, raw) {
            Ok(block) => block,
            Err(reason) => {
                events.push(ValidationEvent::Rejected { hash, reason });
                return;
            }
        };
        let parent = self.entry(&block.header.prev_blockhash);
        let entry = Entry {
            header: block.header,
            height: parent.height + 1,
            chainwork: parent.chainwork + block.header.work(),
            raw: raw.to_vec(),
        };
        let more_work = entry.chainwork > self.tip().chainwork;
        self.index.insert(hash, entry);
        if more_work {
            self.activate(hash, events);
        } else {
            events.push(ValidationEvent::Stored { hash });
        }
    }

    fn tip(&self) -> ValidatedTip {
        let hash = self.active[self.active.len() - 1];
        let entry = self.entry(&hash);
        ValidatedTip { height: entry.height, hash, chainwork: entry.chainwork }
    }

    fn header_for(&self, hash: &BlockHash) -> Option<HeaderInfo> {
        let entry = self.index.get(hash)?;
        Some(HeaderInfo {
            header: entry.header,
            height: entry.height,
            in_active_chain: self.active.get(entry.height as usize) == Some(hash),
        })
    }

    fn read_block(&self, hash: &BlockHash) -> Option<Vec<u8>> {
        self.index.get(hash).map(|entry| entry.raw.clone())
    }

    fn checkpoint(&mut self) -> Result<ValidatedTip, ValidatorError> {
        Ok(self.tip())
    }
}
