//! What the operator sees of the chain moving: while the node is behind its best header chain, a
//! line every [`PROGRESS_INTERVAL`] (height, headers, share of the best chain's work, blocks/s,
//! MB/s, time left at that pace, peers downloading); once caught up, one line per new tip. The
//! figures come from world snapshots taken after ticks, so the loop's clock paces the lines and
//! the arithmetic ([`Progress::line`]) is a pure function of two snapshots.

use crate::validation::WorkerLoad;
use bevy_ecs::prelude::*;
use bitcoin::pow::Work;
use oni_systems::chain::{HeaderTree, Ibd, PeerBlocks};
use oni_systems::resources::Metrics;
use oni_systems::wire::Command;
use std::time::{Duration, Instant};

/// How often a syncing node reports.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// The chain as one look at the world saw it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChainSnapshot {
    /// Validated tip height.
    pub height: u32,
    /// Best header chain's height.
    pub headers: u32,
    /// The validated tip's share of the best header chain's work (0..=1).
    pub work_share: f64,
    /// Block bytes received so far (whole blocks and BIP152 messages).
    pub block_bytes: u64,
    /// Peers with block requests in flight.
    pub downloading: usize,
    /// Initial block download.
    pub ibd: bool,
    /// The validation worker's busy time so far.
    pub validator: WorkerLoad,
}

/// The validation worker's load as of the last tick (the chain IO copies it in), for the lines.
#[derive(Resource, Clone, Copy, Debug, Default)]
pub struct ValidatorLoad(pub WorkerLoad);

impl ChainSnapshot {
    /// Takes the figures from `world`.
    pub fn of(world: &mut World) -> ChainSnapshot {
        let downloading = world.query::<&PeerBlocks>().iter(world).filter(|b| !b.in_flight.is_empty()).count();
        let tree = world.resource::<HeaderTree>();
        let tip = tree.entry(tree.validated_tip());
        let best = tree.best_entry();
        let m = world.resource::<Metrics>();
        let block_bytes = [Command::Block, Command::CmpctBlock, Command::BlockTxn]
            .iter()
            .map(|c| m.bytes_in.get(*c as usize).copied().unwrap_or(0))
            .sum();
        ChainSnapshot {
            height: tip.height,
            headers: best.height,
            work_share: work_share(tip.chainwork(), best.chainwork()),
            block_bytes,
            downloading,
            ibd: world.resource::<Ibd>().active,
            validator: world.get_resource::<ValidatorLoad>().map(|l| l.0).unwrap_or_default(),
        }
    }

    /// Whether the node is still fetching blocks of its best header chain. Not the IBD flag: a
    /// node whose newest block is old (regtest, a quiet test chain) stays in IBD with nothing to
    /// fetch, and must not report "syncing" every 5 s.
    pub fn behind(&self) -> bool {
        self.height < self.headers
    }
}

/// `part / whole` of two chain works (1 when `whole` is zero): what `getblockchaininfo` reports as
/// `verificationprogress` and the progress line as its percentage.
pub fn work_share(part: Work, whole: Work) -> f64 {
    let (p, w) = (work_f64(part), work_f64(whole));
    if w <= 0.0 {
        1.0
    } else {
        (p / w).clamp(0.0, 1.0)
    }
}

fn work_f64(w: Work) -> f64 {
    w.to_be_bytes().iter().fold(0.0, |acc, &b| acc * 256.0 + f64::from(b))
}

/// Most recent lines kept for RPC-less inspection (tests, dumps).
pub const RECENT_LINES: usize = 16;

/// Paces the lines: the last report's snapshot and time, where the current sync began, and the
/// last lines logged. A world resource, so whoever holds the world can read what was said.
#[derive(Resource, Debug, Default)]
pub struct Progress {
    last: Option<(Instant, ChainSnapshot)>,
    /// When and at which height the node last fell behind its headers.
    sync_started: Option<(Instant, u32)>,
    /// The last [`RECENT_LINES`] lines logged, oldest first.
    pub recent: std::collections::VecDeque<String>,
}

impl Progress {
    /// Called after a tick: logs a progress line when due, a line when the node caught up, or
    /// one per new tip once caught up. Costs two tree lookups when nothing is due.
    pub fn after_tick(world: &mut World, now: Instant) {
        world.init_resource::<Progress>();
        world.resource_scope(|world, mut p: Mut<Progress>| p.look(world, now));
    }

    fn look(&mut self, world: &mut World, now: Instant) {
        let tree = world.resource::<HeaderTree>();
        let (height, headers) = (tree.entry(tree.validated_tip()).height, tree.best_entry().height);
        if headers > height && self.sync_started.is_none() {
            // The moment the node first knows of blocks it lacks: where "caught up" counts from.
            self.sync_started = Some((now, height));
        }
        let due = match self.last {
            None => true,
            Some((at, prev)) => {
                now.duration_since(at) >= PROGRESS_INTERVAL
                    || (height != prev.height && (!prev.behind() || height >= headers))
            }
        };
        if !due {
            return;
        }
        let snap = ChainSnapshot::of(world);
        let line = match self.last {
            Some((at, prev)) if snap.behind() => Some(Progress::line(&prev, &snap, now.duration_since(at))),
            Some(_) if !snap.behind() && self.sync_started.is_some_and(|(_, from)| snap.height > from + 1) => {
                let (since, from) = self.sync_started.take().unwrap_or((now, snap.height));
                let secs = now.duration_since(since).as_secs_f64();
                let v = snap.validator;
                Some(format!(
                    "caught up: block {} of {} headers, {} blocks in {:.1} s; validator busy {:.1} s, \
                     of it {:.1} s in {} checkpoints",
                    snap.height,
                    snap.headers,
                    snap.height.saturating_sub(from),
                    secs,
                    (v.validating + v.checkpointing).as_secs_f64(),
                    v.checkpointing.as_secs_f64(),
                    v.checkpoints
                ))
            }
            Some((_, prev)) if snap.height != prev.height => {
                self.sync_started = None;
                Some(format!("new tip: block {}", snap.height))
            }
            _ => None,
        };
        if let Some(line) = line {
            tracing::info!(
                height = snap.height,
                headers = snap.headers,
                peers_downloading = snap.downloading,
                "{line}"
            );
            if self.recent.len() == RECENT_LINES {
                self.recent.pop_front();
            }
            self.recent.push_back(line);
        }
        self.last = Some((now, snap));
    }

    /// The progress line between two snapshots `elapsed` apart.
    pub fn line(prev: &ChainSnapshot, now: &ChainSnapshot, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64().max(1e-3);
        let blocks = now.height.saturating_sub(prev.height);
        let rate = f64::from(blocks) / secs;
        let mb_s = now.block_bytes.saturating_sub(prev.block_bytes) as f64 / 1e6 / secs;
        let left = now.headers.saturating_sub(now.height);
        let eta = if left == 0 {
            "done".to_string()
        } else if rate > 0.0 {
            format_duration(f64::from(left) / rate)
        } else {
            "unknown".to_string()
        };
        let busy = |l: &WorkerLoad| l.validating + l.checkpointing;
        let busy_pct = busy(&now.validator).saturating_sub(busy(&prev.validator)).as_secs_f64() / secs * 100.0;
        format!(
            "syncing: block {} of {} headers ({:.2}% of the chain's work), {:.1} blocks/s, {:.2} MB/s, \
             {} left, {} peers downloading, validator busy {:.0}%",
            now.height,
            now.headers,
            now.work_share * 100.0,
            rate,
            mb_s,
            eta,
            now.downloading,
            busy_pct.min(100.0)
        )
    }
}

/// `3h 05m`, `4m 10s`, `12s`.
fn format_duration(s: f64) -> String {
    let s = s.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(height: u32, headers: u32, block_bytes: u64) -> ChainSnapshot {
        let validator = WorkerLoad { validating: Duration::from_millis(u64::from(height)), ..WorkerLoad::default() };
        ChainSnapshot { height, headers, work_share: 0.25, block_bytes, downloading: 3, ibd: true, validator }
    }

    #[test]
    fn the_line_gives_rates_share_time_left_and_peers() {
        let line = Progress::line(&snap(1_000, 20_000, 0), &snap(1_500, 20_000, 50_000_000), Duration::from_secs(5));
        assert_eq!(
            line,
            "syncing: block 1500 of 20000 headers (25.00% of the chain's work), 100.0 blocks/s, 10.00 MB/s, \
             3m 05s left, 3 peers downloading, validator busy 10%"
        );
        let stuck = Progress::line(&snap(1_500, 20_000, 0), &snap(1_500, 20_000, 0), Duration::from_secs(5));
        assert!(stuck.contains("0.0 blocks/s") && stuck.contains("unknown left"), "{stuck}");
        let done = Progress::line(&snap(1_500, 2_000, 0), &snap(2_000, 2_000, 0), Duration::from_secs(5));
        assert!(done.contains("done left"), "{done}");
    }

    #[test]
    fn a_node_at_its_best_header_is_not_behind_even_in_ibd() {
        let at_tip = ChainSnapshot {
            height: 2_100,
            headers: 2_100,
            work_share: 1.0,
            block_bytes: 0,
            downloading: 0,
            ibd: true,
            validator: WorkerLoad::default(),
        };
        assert!(!at_tip.behind(), "an old tip with nothing to fetch is not syncing");
        assert!(ChainSnapshot { height: 2_099, ..at_tip }.behind());
    }

    #[test]
    fn work_shares_are_ratios_of_chain_work() {
        let w = |n: u64| {
            Work::from_be_bytes({
                let mut b = [0u8; 32];
                b[24..].copy_from_slice(&n.to_be_bytes());
                b
            })
        };
        assert_eq!(work_share(w(1), w(4)), 0.25);
        assert_eq!(work_share(w(4), w(4)), 1.0);
        assert_eq!(work_share(w(0), w(0)), 1.0, "nothing to sync");
        let big = Work::from_be_bytes([0xff; 32]);
        assert!((work_share(big, big) - 1.0).abs() < 1e-12);
        assert_eq!(format_duration(11_100.0), "3h 05m");
        assert_eq!(format_duration(12.4), "12s");
    }
}
