//! The transaction pool: accepted transactions with their fees, linked to their in-pool parents and
//! children, bounded in memory. When full, the package with the lowest descendant feerate goes
//! (with its descendants) and the pool's minimum feerate rises above it, decaying back (half-life
//! 12 h, faster when the pool is emptier) once blocks arrive — Core's rolling minimum fee. Blocks
//! take out what they confirm and what conflicts with them. Replacement checks (full RBF) live here
//! because they need the pool's links; script and coin checks live in `accept`.

use ahash::{AHashMap, AHashSet};
use bevy_ecs::prelude::*;
use bitcoin::{OutPoint, Transaction, TxOut, Txid, Wtxid};
use smallvec::SmallVec;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Feerate in satoshis per 1,000 virtual bytes, Core's unit for policy feerates.
pub type SatPerKvb = u64;

/// Core's rolling-minimum half-life.
pub const ROLLING_FEE_HALFLIFE_MS: u64 = 12 * 60 * 60 * 1000;
/// Core's bound on transactions a replacement may evict (itself and descendants).
pub const MAX_REPLACEMENT_CANDIDATES: usize = 100;
/// Core's ancestor and descendant count limits (`-limitancestorcount`, `-limitdescendantcount`).
pub const ANCESTOR_LIMIT: usize = 25;
/// See [`ANCESTOR_LIMIT`].
pub const DESCENDANT_LIMIT: usize = 25;

/// Limits of the pool, from the node's config.
#[derive(Clone, Debug)]
pub struct PoolLimits {
    /// Memory bound (`--maxmempool`, Core's default 300 MB).
    pub max_bytes: usize,
    /// Floor for any transaction (Core's current `-minrelaytxfee` default: 100 sat/kvB).
    pub min_relay_feerate: SatPerKvb,
    /// What a replacement or an eviction adds to the floor (Core: 100 sat/kvB).
    pub incremental_feerate: SatPerKvb,
    /// Transactions older than this leave (Core: 336 h).
    pub expiry_ms: u64,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            max_bytes: 300_000_000,
            min_relay_feerate: 100,
            incremental_feerate: 100,
            expiry_ms: 336 * 60 * 60 * 1000,
        }
    }
}

/// One pooled transaction and its cached package figures.
#[derive(Clone, Debug)]
pub struct PoolEntry {
    /// The transaction.
    pub tx: Arc<Transaction>,
    /// Its txid.
    pub txid: Txid,
    /// Its wtxid.
    pub wtxid: Wtxid,
    /// Fee paid, satoshis.
    pub fee_sat: u64,
    /// Virtual size (sigop-adjusted), what feerates divide by.
    pub vsize: u64,
    /// Memory this entry accounts for.
    pub usage_bytes: usize,
    /// When it entered.
    pub entered_ms: u64,
    /// Chain height when it entered.
    pub entered_height: u32,
    /// Arrival order: the tie-break that keeps eviction and announcements deterministic.
    pub sequence: u64,
    /// In-pool parents.
    pub parents: SmallVec<[Txid; 2]>,
    /// In-pool children.
    pub children: SmallVec<[Txid; 2]>,
    /// Fee of itself and all in-pool descendants.
    pub desc_fee_sat: u64,
    /// Vsize of itself and all in-pool descendants.
    pub desc_vsize: u64,
    /// When we first announced it to anyone (relay latency's last leg).
    pub announced_ms: Option<u64>,
}

impl PoolEntry {
    /// Own feerate.
    pub fn feerate(&self) -> SatPerKvb {
        feerate(self.fee_sat, self.vsize)
    }
}

/// `fee` over `vsize` in sat/kvB.
pub fn feerate(fee_sat: u64, vsize: u64) -> SatPerKvb {
    fee_sat.saturating_mul(1000) / vsize.max(1)
}

/// What a feerate asks of `vsize` bytes.
pub fn fee_for(rate: SatPerKvb, vsize: u64) -> u64 {
    rate.saturating_mul(vsize) / 1000
}

/// Ordering key for eviction: lowest descendant feerate first, then newest first (the newest of two
/// equals goes, so an attacker cannot push out older transactions with equal feerates).
fn evict_key(e: &PoolEntry) -> (u128, std::cmp::Reverse<u64>, Txid) {
    let rate = ((e.desc_fee_sat as u128) << 32) / e.desc_vsize.max(1) as u128;
    (rate, std::cmp::Reverse(e.sequence), e.txid)
}

/// Why the pool refused a transaction that passed the other checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolRefusal {
    /// Too many in-pool ancestors or descendants would result.
    ChainTooLong,
    /// Would replace more than [`MAX_REPLACEMENT_CANDIDATES`].
    TooManyReplacements,
    /// Pays less than what it replaces plus the incremental relay fee for its own size.
    InsufficientFee,
    /// Its feerate is not above every transaction it directly replaces.
    FeerateNotHigher,
    /// Spends an output of a transaction it would replace.
    SpendsConflicting,
}

/// Why a transaction left the pool (Core's removal reasons, for metrics and the RPC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// Included in a block.
    Block,
    /// Spent an output a block spent.
    Conflict,
    /// Replaced by a higher-paying transaction.
    Replaced,
    /// Evicted to fit the memory bound.
    SizeLimit,
    /// Older than the expiry.
    Expiry,
    /// Failed its re-check after a reorg (its coins are gone, or it is in the new chain).
    Reorg,
}

/// The pool.
#[derive(Resource, Debug)]
pub struct Mempool {
    entries: AHashMap<Txid, PoolEntry>,
    by_wtxid: AHashMap<Wtxid, Txid>,
    spent_by: AHashMap<OutPoint, Txid>,
    by_evict: BTreeSet<(u128, std::cmp::Reverse<u64>, Txid)>,
    usage_bytes: usize,
    total_vsize: u64,
    total_fee_sat: u64,
    next_sequence: u64,
    limits: PoolLimits,
    rolling_min: f64,
    rolling_updated_ms: u64,
    block_since_bump: bool,
    /// Removals by reason, for metrics.
    pub removed: [u64; 6],
}

impl Default for Mempool {
    fn default() -> Self {
        Mempool::new(PoolLimits::default())
    }
}

/// Estimated heap an entry holds: the transaction's allocations plus the entry and its map slots.
/// Counted by structure, not serialized size, so the bound is on real memory as Core's is.
pub fn usage_of(tx: &Transaction) -> usize {
    use std::mem::size_of;
    let inputs: usize = tx
        .input
        .iter()
        .map(|i| size_of::<bitcoin::TxIn>() + i.script_sig.len() + i.witness.size() + 8 * i.witness.len())
        .sum();
    let outputs: usize = tx.output.iter().map(|o| size_of::<TxOut>() + o.script_pubkey.len()).sum();
    let slots = 3 * (size_of::<Txid>() + size_of::<OutPoint>()) + tx.input.len() * 2 * size_of::<OutPoint>();
    size_of::<Transaction>() + inputs + outputs + size_of::<PoolEntry>() + slots + 64
}

impl Mempool {
    /// An empty pool.
    pub fn new(limits: PoolLimits) -> Self {
        Mempool {
            entries: AHashMap::new(),
            by_wtxid: AHashMap::new(),
            spent_by: AHashMap::new(),
            by_evict: BTreeSet::new(),
            usage_bytes: 0,
            total_vsize: 0,
            total_fee_sat: 0,
            next_sequence: 0,
            limits,
            rolling_min: 0.0,
            rolling_updated_ms: 0,
            block_since_bump: false,
            removed: [0; 6],
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &PoolLimits {
        &self.limits
    }

    /// Transactions held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Memory accounted.
    pub fn usage_bytes(&self) -> usize {
        self.usage_bytes
    }

    /// Sum of vsizes.
    pub fn total_vsize(&self) -> u64 {
        self.total_vsize
    }

    /// Sum of fees.
    pub fn total_fee_sat(&self) -> u64 {
        self.total_fee_sat
    }

    /// The arrival sequence the next entry will get.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// The entry for `txid`.
    pub fn get(&self, txid: &Txid) -> Option<&PoolEntry> {
        self.entries.get(txid)
    }

    /// The entry for `wtxid`.
    pub fn get_by_wtxid(&self, wtxid: &Wtxid) -> Option<&PoolEntry> {
        self.by_wtxid.get(wtxid).and_then(|t| self.entries.get(t))
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &PoolEntry> {
        self.entries.values()
    }

    /// The pool transaction spending `outpoint`, if any.
    pub fn spender(&self, outpoint: &OutPoint) -> Option<Txid> {
        self.spent_by.get(outpoint).copied()
    }

    /// An output of a pooled transaction: children spend these before they confirm.
    pub fn output(&self, outpoint: &OutPoint) -> Option<&TxOut> {
        self.entries.get(&outpoint.txid).and_then(|e| e.tx.output.get(outpoint.vout as usize))
    }

    /// The feerate a new transaction must pay now: the rolling minimum (after decay) or the relay
    /// floor, whichever is higher.
    pub fn min_feerate(&mut self, now_ms: u64) -> SatPerKvb {
        self.decay(now_ms);
        (self.rolling_min.ceil() as u64).max(self.limits.min_relay_feerate)
    }

    /// The rolling minimum without decaying (for reports).
    pub fn rolling_min_feerate(&self) -> SatPerKvb {
        self.rolling_min.ceil() as u64
    }

    fn decay(&mut self, now_ms: u64) {
        if !self.block_since_bump || self.rolling_min == 0.0 || now_ms <= self.rolling_updated_ms + 10_000 {
            return;
        }
        let mut halflife = ROLLING_FEE_HALFLIFE_MS as f64;
        if self.usage_bytes < self.limits.max_bytes / 4 {
            halflife /= 4.0;
        } else if self.usage_bytes < self.limits.max_bytes / 2 {
            halflife /= 2.0;
        }
        let elapsed = (now_ms - self.rolling_updated_ms) as f64;
        self.rolling_min /= 2f64.powf(elapsed / halflife);
        self.rolling_updated_ms = now_ms;
        if self.rolling_min < self.limits.incremental_feerate as f64 / 2.0 {
            self.rolling_min = 0.0;
        }
    }

    /// In-pool ancestors of a transaction spending `inputs` (not yet in the pool, or in it).
    pub fn ancestors_of_inputs<'a>(&self, inputs: impl Iterator<Item = &'a OutPoint>) -> AHashSet<Txid> {
        let mut seen = AHashSet::new();
        let mut stack: Vec<Txid> = inputs.filter(|o| self.entries.contains_key(&o.txid)).map(|o| o.txid).collect();
        while let Some(t) = stack.pop() {
            if seen.insert(t) {
                if let Some(e) = self.entries.get(&t) {
                    stack.extend(e.parents.iter().copied());
                }
            }
        }
        seen
    }

    /// In-pool ancestors of a pooled transaction (not itself).
    pub fn ancestors(&self, txid: &Txid) -> AHashSet<Txid> {
        match self.entries.get(txid) {
            Some(e) => self.ancestors_of_inputs(e.tx.input.iter().map(|i| &i.previous_output)),
            None => AHashSet::new(),
        }
    }

    /// In-pool descendants of `txid` (not itself).
    pub fn descendants(&self, txid: &Txid) -> AHashSet<Txid> {
        let mut seen = AHashSet::new();
        let mut stack: Vec<Txid> = self.entries.get(txid).map(|e| e.children.to_vec()).unwrap_or_default();
        while let Some(t) = stack.pop() {
            if seen.insert(t) {
                if let Some(e) = self.entries.get(&t) {
                    stack.extend(e.children.iter().copied());
                }
            }
        }
        seen
    }

    /// Direct conflicts: pooled transactions spending an input of `tx`.
    pub fn conflicts_of(&self, tx: &Transaction) -> AHashSet<Txid> {
        tx.input.iter().filter_map(|i| self.spent_by.get(&i.previous_output).copied()).collect()
    }

    /// Checks the chain limits for a new transaction whose in-pool ancestors are `ancestors`
    /// (after the replaced ones are gone).
    pub fn check_chain_limits(&self, ancestors: &AHashSet<Txid>, replaced: &AHashSet<Txid>) -> Result<(), PoolRefusal> {
        let live: Vec<&Txid> = ancestors.iter().filter(|a| !replaced.contains(*a)).collect();
        if live.len() + 1 > ANCESTOR_LIMIT {
            return Err(PoolRefusal::ChainTooLong);
        }
        // Every ancestor gains a descendant; none may pass the limit.
        for a in live {
            if self.descendants(a).iter().filter(|d| !replaced.contains(*d)).count() + 2 > DESCENDANT_LIMIT {
                return Err(PoolRefusal::ChainTooLong);
            }
        }
        Ok(())
    }

    /// Full-RBF rules for a transaction paying `fee_sat` for `vsize` that directly conflicts with
    /// `conflicts` and has in-pool `ancestors`: returns everything it would evict.
    pub fn check_replacement(
        &self,
        fee_sat: u64,
        vsize: u64,
        conflicts: &AHashSet<Txid>,
        ancestors: &AHashSet<Txid>,
    ) -> Result<AHashSet<Txid>, PoolRefusal> {
        let mut all = AHashSet::new();
        for c in conflicts {
            if ancestors.contains(c) {
                return Err(PoolRefusal::SpendsConflicting);
            }
            all.insert(*c);
            all.extend(self.descendants(c));
            if all.len() > MAX_REPLACEMENT_CANDIDATES {
                return Err(PoolRefusal::TooManyReplacements);
            }
        }
        if all.iter().any(|t| ancestors.contains(t)) {
            return Err(PoolRefusal::SpendsConflicting);
        }
        for c in conflicts {
            let Some(e) = self.entries.get(c) else { continue };
            // Cross-multiplied so rounding cannot let an equal feerate through.
            if (fee_sat as u128) * (e.vsize as u128) <= (e.fee_sat as u128) * (vsize as u128) {
                return Err(PoolRefusal::FeerateNotHigher);
            }
        }
        let replaced_fee: u64 = all.iter().filter_map(|t| self.entries.get(t)).map(|e| e.fee_sat).sum();
        if fee_sat < replaced_fee.saturating_add(fee_for(self.limits.incremental_feerate, vsize)) {
            return Err(PoolRefusal::InsufficientFee);
        }
        Ok(all)
    }

    /// Adds a checked transaction. The caller removed what it replaces first.
    pub fn insert(&mut self, tx: Arc<Transaction>, fee_sat: u64, vsize: u64, now_ms: u64, height: u32) -> Txid {
        let txid = tx.compute_txid();
        let wtxid = tx.compute_wtxid();
        let mut parents: SmallVec<[Txid; 2]> = SmallVec::new();
        for input in &tx.input {
            let p = input.previous_output.txid;
            if self.entries.contains_key(&p) && !parents.contains(&p) {
                parents.push(p);
            }
            self.spent_by.insert(input.previous_output, txid);
        }
        let ancestors = self.ancestors_of_inputs(tx.input.iter().map(|i| &i.previous_output));
        for a in &ancestors {
            self.bump_desc(a, fee_sat as i64, vsize as i64);
        }
        for p in &parents {
            if let Some(e) = self.entries.get_mut(p) {
                e.children.push(txid);
            }
        }
        let usage = usage_of(&tx);
        let entry = PoolEntry {
            tx,
            txid,
            wtxid,
            fee_sat,
            vsize,
            usage_bytes: usage,
            entered_ms: now_ms,
            entered_height: height,
            sequence: self.next_sequence,
            parents,
            children: SmallVec::new(),
            desc_fee_sat: fee_sat,
            desc_vsize: vsize,
            announced_ms: None,
        };
        self.next_sequence += 1;
        self.by_evict.insert(evict_key(&entry));
        self.by_wtxid.insert(wtxid, txid);
        self.usage_bytes += usage;
        self.total_vsize += vsize;
        self.total_fee_sat += fee_sat;
        self.entries.insert(txid, entry);
        txid
    }

    fn bump_desc(&mut self, txid: &Txid, fee: i64, vsize: i64) {
        let Some(e) = self.entries.get_mut(txid) else { return };
        self.by_evict.remove(&evict_key(e));
        e.desc_fee_sat = (e.desc_fee_sat as i64 + fee).max(0) as u64;
        e.desc_vsize = (e.desc_vsize as i64 + vsize).max(1) as u64;
        self.by_evict.insert(evict_key(e));
    }

    /// Removes `txid` and its descendants; returns the removed transactions, parents first.
    pub fn remove_with_descendants(&mut self, txid: &Txid, why: Removal) -> Vec<Arc<Transaction>> {
        if !self.entries.contains_key(txid) {
            return Vec::new();
        }
        let mut set: Vec<Txid> = self.descendants(txid).into_iter().collect();
        set.push(*txid);
        // Children before parents, so each removal sees a leaf.
        set.sort_by_key(|t| std::cmp::Reverse(self.entries.get(t).map(|e| e.sequence).unwrap_or(0)));
        let mut out: Vec<Arc<Transaction>> = set.iter().filter_map(|t| self.remove_one(t, why)).collect();
        out.reverse();
        out
    }

    /// Removes one entry, keeping links and package figures right. Children stay (their parent
    /// confirmed, or they are being removed too).
    fn remove_one(&mut self, txid: &Txid, why: Removal) -> Option<Arc<Transaction>> {
        let ancestors = self.ancestors(txid);
        let e = self.entries.get(txid)?;
        let (fee, vsize) = (e.fee_sat, e.vsize);
        for a in &ancestors {
            self.bump_desc(a, -(fee as i64), -(vsize as i64));
        }
        let e = self.entries.remove(txid)?;
        self.by_evict.remove(&evict_key(&e));
        self.by_wtxid.remove(&e.wtxid);
        for input in &e.tx.input {
            if self.spent_by.get(&input.previous_output) == Some(txid) {
                self.spent_by.remove(&input.previous_output);
            }
        }
        for p in &e.parents {
            if let Some(pe) = self.entries.get_mut(p) {
                pe.children.retain(|c| c != txid);
            }
        }
        for c in &e.children {
            if let Some(ce) = self.entries.get_mut(c) {
                ce.parents.retain(|p| p != txid);
            }
        }
        self.usage_bytes -= e.usage_bytes;
        self.total_vsize -= e.vsize;
        self.total_fee_sat -= e.fee_sat;
        self.removed[why as usize] += 1;
        Some(e.tx)
    }

    /// Evicts lowest-descendant-feerate packages until the pool fits its bound, raising the
    /// rolling minimum to the evicted feerate plus the incremental feerate. Returns the evicted.
    pub fn trim(&mut self, now_ms: u64) -> Vec<Arc<Transaction>> {
        let mut out = Vec::new();
        while self.usage_bytes > self.limits.max_bytes {
            let Some(&(_, _, txid)) = self.by_evict.iter().next() else { break };
            let Some(e) = self.entries.get(&txid) else { break };
            let rate = feerate(e.desc_fee_sat, e.desc_vsize) + self.limits.incremental_feerate;
            if rate as f64 > self.rolling_min {
                self.rolling_min = rate as f64;
                self.rolling_updated_ms = now_ms;
                self.block_since_bump = false;
            }
            out.extend(self.remove_with_descendants(&txid, Removal::SizeLimit));
        }
        out
    }

    /// A block connected: its transactions leave (children stay, now spending the chain), then
    /// whatever spends an output the block spent (and descendants). Returns the conflicted ones.
    pub fn remove_for_block(&mut self, txs: &[Transaction], now_ms: u64) -> Vec<Arc<Transaction>> {
        for tx in txs {
            let txid = tx.compute_txid();
            if self.entries.contains_key(&txid) {
                self.remove_one(&txid, Removal::Block);
            }
        }
        let mut conflicted = Vec::new();
        for tx in txs.iter().skip(1) {
            for input in &tx.input {
                if let Some(spender) = self.spent_by.get(&input.previous_output).copied() {
                    conflicted.extend(self.remove_with_descendants(&spender, Removal::Conflict));
                }
            }
        }
        // As Core: the decay starts counting from the block.
        self.block_since_bump = true;
        self.rolling_updated_ms = now_ms;
        conflicted
    }

    /// Drops transactions older than the expiry (and their descendants).
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let cutoff = now_ms.saturating_sub(self.limits.expiry_ms);
        let old: Vec<Txid> = self.entries.values().filter(|e| e.entered_ms < cutoff).map(|e| e.txid).collect();
        old.iter().map(|t| self.remove_with_descendants(t, Removal::Expiry).len()).sum()
    }

    /// Empties the pool for a reorg, keeping its limits, floor and counters: the transactions come
    /// back in arrival order, to be checked again against the new chain (links and package figures
    /// are rebuilt as they re-enter; those that fail count as [`Removal::Reorg`]).
    pub fn take_all(&mut self) -> Vec<Arc<Transaction>> {
        let mut entries: Vec<PoolEntry> = self.entries.drain().map(|(_, e)| e).collect();
        entries.sort_unstable_by_key(|e| e.sequence);
        self.by_wtxid.clear();
        self.spent_by.clear();
        self.by_evict.clear();
        self.usage_bytes = 0;
        self.total_vsize = 0;
        self.total_fee_sat = 0;
        entries.into_iter().map(|e| e.tx).collect()
    }

    /// Counts a transaction that left without being removed here (failed its reorg re-check).
    pub fn count_removal(&mut self, why: Removal) {
        self.removed[why as usize] += 1;
    }

    /// Removes `txid` and descendants as replaced.
    pub fn remove_replaced(&mut self, txid: &Txid) -> Vec<Arc<Transaction>> {
        self.remove_with_descendants(txid, Removal::Replaced)
    }

    /// Marks `txid` announced; the first time, returns how long it waited since it entered.
    pub fn first_announce(&mut self, txid: &Txid, now_ms: u64) -> Option<u64> {
        let e = self.entries.get_mut(txid)?;
        if e.announced_ms.is_some() {
            return None;
        }
        e.announced_ms = Some(now_ms);
        Some(now_ms.saturating_sub(e.entered_ms))
    }

    /// Panics with a message when the pool contradicts itself: recomputes from the entries alone
    /// the totals, the wtxid, spender and eviction indexes, every parent/child link and every
    /// descendant fee and size, and compares. O(n × package); for tests and the fuzz targets.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        let (mut usage, mut vsize, mut fee, mut inputs) = (0usize, 0u64, 0u64, 0usize);
        for (txid, e) in &self.entries {
            assert_eq!(*txid, e.txid, "entry keyed by another txid");
            assert_eq!(e.txid, e.tx.compute_txid(), "entry's txid");
            assert_eq!(e.wtxid, e.tx.compute_wtxid(), "entry's wtxid");
            assert_eq!(self.by_wtxid.get(&e.wtxid), Some(txid), "wtxid index misses {txid}");
            assert!(e.sequence < self.next_sequence, "sequence from the future");
            usage += e.usage_bytes;
            vsize += e.vsize;
            fee += e.fee_sat;
            let mut parents: Vec<Txid> = Vec::new();
            for input in &e.tx.input {
                inputs += 1;
                assert_eq!(self.spent_by.get(&input.previous_output), Some(txid), "spender index of {txid}");
                let p = input.previous_output.txid;
                if self.entries.contains_key(&p) && !parents.contains(&p) {
                    parents.push(p);
                }
            }
            let mut have: Vec<Txid> = e.parents.to_vec();
            have.sort();
            parents.sort();
            assert_eq!(have, parents, "parents of {txid}");
            for p in &e.parents {
                let pe = &self.entries[p];
                assert_eq!(pe.children.iter().filter(|c| *c == txid).count(), 1, "{p} lists child {txid} once");
                assert!(pe.sequence < e.sequence, "parent {p} arrived after its child {txid}");
            }
            for c in &e.children {
                let ce = self.entries.get(c).unwrap_or_else(|| panic!("child {c} of {txid} not pooled"));
                assert!(ce.parents.contains(txid), "child {c} does not list parent {txid}");
            }
            let desc = self.descendants(txid);
            let desc_fee: u64 = desc.iter().map(|d| self.entries[d].fee_sat).sum::<u64>() + e.fee_sat;
            let desc_vsize: u64 = desc.iter().map(|d| self.entries[d].vsize).sum::<u64>() + e.vsize;
            assert_eq!((e.desc_fee_sat, e.desc_vsize), (desc_fee, desc_vsize), "package figures of {txid}");
            assert!(self.by_evict.contains(&evict_key(e)), "eviction index misses {txid}");
        }
        assert_eq!(self.by_wtxid.len(), self.entries.len(), "wtxid index size");
        assert_eq!(self.spent_by.len(), inputs, "spender index size (two entries spend one output?)");
        assert_eq!(self.by_evict.len(), self.entries.len(), "eviction index size");
        assert_eq!((self.usage_bytes, self.total_vsize, self.total_fee_sat), (usage, vsize, fee), "totals");
    }

    /// Number of in-pool ancestors of a pooled transaction (announcement order: parents first).
    pub fn ancestor_count(&self, txid: &Txid) -> usize {
        self.ancestors(txid).len()
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
