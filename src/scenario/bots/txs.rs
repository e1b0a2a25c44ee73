//! Transaction bots. OrphanFlood: after a correct handshake, `tx` messages whose inputs spend
//! random outpoints nobody has, each well-formed and standard-looking (version 2, P2WPKH-shaped
//! witnesses, a P2WPKH output, optionally an OP_RETURN pad), so every one passes the node's
//! context-free checks and lands in its orphanage; it never answers the node's requests for the
//! parents. TxRelayer: an honest peer relaying Core's fixture mempool (53 transactions, chains up to
//! four deep): it pushes every transaction that has a parent in that mempool first, children before
//! their parents, so they arrive as orphans, then announces the rest by `inv` (wtxids), and answers
//! every `getdata` for what it holds (by txid or wtxid, as the node asks for orphan parents by txid),
//! optionally after a delay (a slow link), which keeps its orphans waiting in the orphanage.

use super::{fixture, random_hash, Behaviour, BotIo, Paced};
use bitcoin::hashes::Hash;
use bitcoin::script::PushBytesBuf;
use bitcoin::{
    absolute, transaction, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, WPubkeyHash, Witness,
};
use oni_systems::wire::{InvList, InvType, Message, Tx};
use std::collections::{HashMap, VecDeque};

/// One orphan: `inputs` random outpoints with P2WPKH-shaped witnesses, one P2WPKH output above the
/// dust threshold, and an OP_RETURN output of `pad_bytes` when non-zero.
pub fn random_orphan(rng: &mut oni_systems::resources::Rng, inputs: u32, pad_bytes: u32) -> Transaction {
    let input = (0..inputs)
        .map(|_| {
            let mut sig = vec![0x30, 0x44, 0x02, 0x20];
            sig.extend_from_slice(&random_hash(rng));
            sig.extend_from_slice(&[0x02, 0x20]);
            sig.extend_from_slice(&random_hash(rng));
            sig.push(0x01); // SIGHASH_ALL
            let mut key = vec![0x02];
            key.extend_from_slice(&random_hash(rng));
            TxIn {
                previous_output: OutPoint { txid: Txid::from_byte_array(random_hash(rng)), vout: rng.below(4) as u32 },
                script_sig: ScriptBuf::new(),
                sequence: Sequence(0xffff_fffd),
                witness: Witness::from_slice(&[sig, key]),
            }
        })
        .collect();
    let mut hash = [0u8; 20];
    hash.copy_from_slice(&random_hash(rng)[..20]);
    let mut output = vec![TxOut {
        value: Amount::from_sat(10_000 + rng.below(90_000)),
        script_pubkey: ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array(hash)),
    }];
    if pad_bytes > 0 {
        let data = PushBytesBuf::try_from(vec![0x6a; pad_bytes as usize]).unwrap_or_default();
        output.push(TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::new_op_return(data) });
    }
    Transaction { version: transaction::Version::TWO, lock_time: absolute::LockTime::ZERO, input, output }
}

/// The orphan flooder.
#[derive(Debug)]
pub struct OrphanFlood {
    life: Paced,
    left: u64,
    inputs: u32,
    pad_bytes: u32,
}

impl OrphanFlood {
    /// The scenario file's parameters: 1 to 10 million orphans of 1 to 500 inputs, padded to at most
    /// 90 kB, each within the weight the orphanage keeps.
    pub(crate) fn check(orphans: u64, inputs_per_tx: u32, pad_bytes: u32) -> Result<(), String> {
        if orphans == 0 || orphans > 10_000_000 {
            return Err(format!("OrphanFlood: orphans must be in 1..=10000000, got {orphans}"));
        }
        if inputs_per_tx == 0 || inputs_per_tx > 500 {
            return Err(format!("OrphanFlood: inputs_per_tx must be in 1..=500, got {inputs_per_tx}"));
        }
        if pad_bytes > 90_000 {
            return Err(format!("OrphanFlood: pad_bytes must be at most 90000, got {pad_bytes}"));
        }
        // Sizes do not depend on the random parts: one sample gives every orphan's weight.
        let weight =
            random_orphan(&mut oni_systems::resources::Rng::seeded(0), inputs_per_tx, pad_bytes).weight().to_wu();
        // Heavier ones are refused as non-standard instead of stored: another scenario.
        let max = oni_systems::mempool::orphanage::MAX_ORPHAN_WEIGHT;
        if weight > max {
            return Err(format!(
                "OrphanFlood: {inputs_per_tx} inputs and {pad_bytes} pad bytes weigh {weight} WU, over the {max} a \
                 standard transaction may"
            ));
        }
        Ok(())
    }
}

impl OrphanFlood {
    /// `orphans` transactions in all, `per_s` a second, each with `inputs` inputs and `pad_bytes`.
    pub fn new(per_s: f64, orphans: u64, inputs: u32, pad_bytes: u32) -> Self {
        OrphanFlood { life: Paced::new(per_s, true), left: orphans, inputs, pad_bytes }
    }
}

impl Behaviour for OrphanFlood {
    fn tick(&mut self, io: &mut BotIo) {
        let due = self.life.due(io).min(self.left);
        for _ in 0..due {
            let tx = random_orphan(io.rng, self.inputs, self.pad_bytes);
            let Ok(wire) = Tx::from_bitcoin(&tx) else { continue };
            if !io.send(&Message::Tx(wire)) {
                break; // the send window is full: this one is not owed
            }
            self.left -= 1;
        }
    }

    fn on_connected(&mut self, io: &mut BotIo) {
        self.life.on_connected(io);
    }

    fn on_message(&mut self, msg: Message, io: &mut BotIo) {
        // The node's requests for the parents go unanswered: there are none.
        self.life.on_message(&msg, io);
    }
}

/// What a relayer did, for the report.
#[derive(Clone, Debug, Default)]
pub struct TxLog {
    /// Every transaction it held (and so offered the node), in fixture order.
    pub held: Vec<Txid>,
    /// Those it pushed before their parents: they reached the node as orphans.
    pub pushed_as_orphans: Vec<Txid>,
    /// Transactions it announced by `inv`.
    pub announced: u64,
    /// `tx` messages it sent in answer to `getdata`.
    pub served: u64,
}

/// What the relayer does next.
#[derive(Clone, Copy, Debug)]
enum Step {
    Push(usize),
    Announce(usize),
}

/// The honest relayer.
#[derive(Debug)]
pub struct TxRelayer {
    life: Paced,
    txs: &'static [Transaction],
    by_hash: HashMap<[u8; 32], usize>,
    plan: VecDeque<Step>,
    answer_delay_ms: u64,
    /// Answers to `getdata`, with the time they are due.
    delayed: VecDeque<(u64, Message)>,
    backlog: VecDeque<Message>,
    log: TxLog,
}

impl TxRelayer {
    /// The scenario file's parameters: answers within 10 minutes; the fixture pool must load.
    pub(crate) fn check(answer_delay_ms: u64) -> Result<(), String> {
        if answer_delay_ms > 600_000 {
            return Err(format!("TxRelayer: answer_delay_ms must be at most 600000, got {answer_delay_ms}"));
        }
        super::fixture_mempool()?;
        Ok(())
    }
}

impl TxRelayer {
    /// Relays the fixture mempool, one push or announcement `per_s` a second, answering `getdata`
    /// `answer_delay_ms` after it arrives. The fixture was checked by the scenario's validation; if
    /// it is missing anyway the relayer holds nothing.
    pub fn new(per_s: f64, answer_delay_ms: u64) -> Self {
        let txs = fixture::mempool().unwrap_or(&[]);
        let mut by_hash = HashMap::new();
        for (i, tx) in txs.iter().enumerate() {
            by_hash.insert(tx.compute_txid().to_byte_array(), i);
            by_hash.insert(tx.compute_wtxid().to_byte_array(), i);
        }
        let has_parent =
            |tx: &Transaction| tx.input.iter().any(|i| by_hash.contains_key(i.previous_output.txid.as_byte_array()));
        // Children last-first (a grandchild before its parent), then the roots in order.
        let mut plan: VecDeque<Step> = (0..txs.len()).rev().filter(|&i| has_parent(&txs[i])).map(Step::Push).collect();
        plan.extend((0..txs.len()).filter(|&i| !has_parent(&txs[i])).map(Step::Announce));
        let log = TxLog { held: txs.iter().map(|t| t.compute_txid()).collect(), ..TxLog::default() };
        TxRelayer {
            life: Paced::new(per_s, true),
            txs,
            by_hash,
            plan,
            answer_delay_ms,
            delayed: VecDeque::new(),
            backlog: VecDeque::new(),
            log,
        }
    }

    fn wire(&self, i: usize) -> Option<Message> {
        Tx::from_bitcoin(&self.txs[i]).ok().map(Message::Tx)
    }

    /// Moves the answers due by `now_ms` to the send backlog.
    fn tick_delayed(&mut self, now_ms: u64) {
        while self.delayed.front().is_some_and(|(due, _)| *due <= now_ms) {
            if let Some((_, m)) = self.delayed.pop_front() {
                self.backlog.push_back(m);
            }
        }
    }

    fn flush(&mut self, io: &mut BotIo) {
        while let Some(m) = self.backlog.front() {
            if !io.send(m) {
                break;
            }
            self.backlog.pop_front();
        }
    }
}

impl Behaviour for TxRelayer {
    fn tick(&mut self, io: &mut BotIo) {
        self.tick_delayed(io.now_ms);
        for _ in 0..self.life.due(io) {
            let Some(step) = self.plan.pop_front() else { break };
            match step {
                Step::Push(i) => {
                    if let Some(m) = self.wire(i) {
                        self.backlog.push_back(m);
                        self.log.pushed_as_orphans.push(self.txs[i].compute_txid());
                    }
                }
                Step::Announce(i) => {
                    let mut list = InvList::default();
                    list.push(InvType::WTX, self.txs[i].compute_wtxid().to_byte_array());
                    self.backlog.push_back(Message::Inv(list));
                    self.log.announced += 1;
                }
            }
        }
        self.flush(io);
    }

    fn on_connected(&mut self, io: &mut BotIo) {
        self.life.on_connected(io);
    }

    fn on_message(&mut self, msg: Message, io: &mut BotIo) {
        self.life.on_message(&msg, io);
        if let Message::GetData(list) = msg {
            let due = io.now_ms + self.answer_delay_ms;
            let mut missing = InvList::default();
            for e in list.iter() {
                let base = e.kind.base();
                if base != InvType::TX && base != InvType::WTX {
                    continue;
                }
                match self.by_hash.get(&e.hash).copied().and_then(|i| self.wire(i)) {
                    Some(m) => {
                        self.delayed.push_back((due, m));
                        self.log.served += 1;
                    }
                    None => missing.push(e.kind, e.hash),
                }
            }
            if !missing.is_empty() {
                self.delayed.push_back((due, Message::NotFound(missing)));
            }
        }
        if self.answer_delay_ms == 0 {
            self.tick_delayed(io.now_ms);
        }
        self.flush(io);
    }

    fn tx_log(&self) -> Option<&TxLog> {
        Some(&self.log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oni_systems::mempool::policy::{check_loose_tx, PolicyConfig};
    use oni_systems::resources::Rng;
    use oni_systems::wire::Network;

    #[test]
    fn orphans_are_standard_random_and_sized_by_their_parameters() {
        let mut rng = Rng::seeded(7);
        let a = random_orphan(&mut rng, 1, 0);
        let b = random_orphan(&mut rng, 1, 0);
        assert_ne!(a.compute_txid(), b.compute_txid());
        assert_eq!(a.weight(), b.weight(), "sizes do not depend on the random parts");
        for tx in [&a, &random_orphan(&mut rng, 12, 20_000), &random_orphan(&mut rng, 300, 0)] {
            assert_eq!(check_loose_tx(tx, &PolicyConfig::default()), Ok(()), "{} inputs", tx.input.len());
        }
        assert!((400..500).contains(&a.weight().to_wu()), "{}", a.weight());
        let heavy = random_orphan(&mut rng, 12, 20_000).weight().to_wu();
        assert!((80_000..90_000).contains(&heavy), "{heavy}");
        let again = random_orphan(&mut Rng::seeded(7), 1, 0);
        assert_eq!(again.compute_txid(), a.compute_txid(), "same seed, same orphan");
    }

    fn io_at(now_ms: u64, rng: &mut Rng) -> BotIo<'_> {
        BotIo::new(now_ms, 1_800_000_000, rng, Network::Regtest, true, usize::MAX)
    }

    fn sent(io: &BotIo) -> Vec<Message> {
        let mut splitter = oni_systems::wire::FrameSplitter::new(Network::Regtest);
        let mut rest = &io.out[..];
        let mut msgs = Vec::new();
        while !rest.is_empty() {
            let (used, r) = splitter.push(rest);
            rest = &rest[used..];
            if let Ok(Some(f)) = r {
                msgs.extend(Message::decode(f.header.command, &f.payload).unwrap());
            }
        }
        msgs
    }

    #[test]
    fn the_relayer_pushes_children_first_then_announces_and_answers_by_txid_or_wtxid_after_its_delay() {
        let txs = fixture::mempool().unwrap();
        let mut r = TxRelayer::new(1_000.0, 500);
        let mut rng = Rng::seeded(1);
        r.life.hs.state = super::super::HsState::Ready;
        let mut io = io_at(0, &mut rng);
        r.tick(&mut io);
        let first = sent(&io);
        let Some(Message::Tx(t)) = first.first() else { panic!("{first:?}") };
        let child = txs.iter().position(|x| x.compute_txid() == t.txid()).unwrap();
        assert!(
            txs[child].input.iter().any(|i| txs.iter().any(|p| p.compute_txid() == i.previous_output.txid)),
            "the first push has a parent in the fixture"
        );
        // Everything else comes out over the next ticks: pushes, then one inv per root.
        let mut all = first;
        for t in 1..100 {
            let mut io = io_at(t, &mut rng);
            r.tick(&mut io);
            all.extend(sent(&io));
        }
        let pushes = all.iter().filter(|m| matches!(m, Message::Tx(_))).count();
        let invs = all.iter().filter(|m| matches!(m, Message::Inv(_))).count();
        assert_eq!(pushes + invs, 53);
        assert_eq!(pushes, r.log.pushed_as_orphans.len());
        assert!(all.iter().position(|m| matches!(m, Message::Inv(_))) > Some(pushes - 1), "pushes come first");

        let parent = &txs[0];
        let mut ask = InvList::default();
        ask.push(InvType::WITNESS_TX, parent.compute_txid().to_byte_array());
        ask.push(InvType::WTX, txs[1].compute_wtxid().to_byte_array());
        ask.push(InvType::WTX, [9; 32]);
        let mut io = io_at(1_000, &mut rng);
        r.on_message(Message::GetData(ask), &mut io);
        assert!(sent(&io).is_empty(), "answers wait for the delay");
        let mut io = io_at(1_499, &mut rng);
        r.tick(&mut io);
        assert!(sent(&io).is_empty());
        let mut io = io_at(1_500, &mut rng);
        r.tick(&mut io);
        let answers = sent(&io);
        let got: Vec<_> = answers
            .iter()
            .filter_map(|m| match m {
                Message::Tx(t) => Some(t.txid()),
                _ => None,
            })
            .collect();
        assert_eq!(got, vec![parent.compute_txid(), txs[1].compute_txid()]);
        assert!(answers.iter().any(|m| matches!(m, Message::NotFound(l) if l.len() == 1)), "{answers:?}");
        assert_eq!(r.log.served, 2);
    }
}
