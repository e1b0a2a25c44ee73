//! Node-wide counters and histograms. Fixed arrays indexed by typed reasons and commands; recording
//! a sample never allocates.

use crate::components::Direction;
use crate::resources::reasons::{DisconnectReason, Misbehavior};
use crate::wire::{Command, DecodeError, HeaderError};
use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

/// A histogram over fixed upper bounds (milliseconds); the last bucket is +Inf.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Upper bounds of the buckets (inclusive), ascending.
    pub bounds: Vec<u64>,
    /// Non-cumulative counts per bucket; one more than bounds (the +Inf bucket).
    pub counts: Vec<u64>,
    /// Sum of all samples.
    pub sum: u64,
    /// Number of samples.
    pub count: u64,
}

impl Histogram {
    /// Buckets suited to network latencies: 1 ms to 2 min.
    pub fn latency_ms() -> Self {
        Self::with_bounds(&[1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000])
    }

    /// A histogram over the given bounds.
    pub fn with_bounds(bounds: &[u64]) -> Self {
        Histogram { bounds: bounds.to_vec(), counts: vec![0; bounds.len() + 1], sum: 0, count: 0 }
    }

    /// Records one sample.
    pub fn record(&mut self, v: u64) {
        let i = self.bounds.partition_point(|&b| b < v);
        self.counts[i] += 1;
        self.sum = self.sum.saturating_add(v);
        self.count += 1;
    }

    /// The smallest bucket bound under which fraction `q` of samples fall (upper estimate).
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let target = (q * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return Some(self.bounds.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        None
    }
}

/// Node-wide telemetry.
#[derive(Resource, Clone, Debug, Serialize, Deserialize)]
pub struct Metrics {
    /// Messages received by command.
    pub msgs_in: Vec<u64>,
    /// Wire bytes received by command.
    pub bytes_in: Vec<u64>,
    /// Messages sent by command.
    pub msgs_out: Vec<u64>,
    /// Wire bytes sent by command.
    pub bytes_out: Vec<u64>,
    /// Well-formed frames with commands we do not know (ignored).
    pub unknown_commands: u64,
    /// Frames refused at the header, by `HeaderError`.
    pub header_errors: Vec<u64>,
    /// Connections whose transport settled, by kind: v1, v2.
    pub transports: [u64; 2],
    /// v2 connections that failed, by `V2Error`.
    pub v2_failures: Vec<u64>,
    /// v2 dials the peer hung up on before answering (each retried once with v1).
    pub v2_refused: u64,
    /// v2 decoy packets received (paced by the decode budget, then dropped).
    pub v2_decoys: u64,
    /// Payloads refused, by `DecodeError`.
    pub decode_errors: Vec<u64>,
    /// Disconnects by reason.
    pub disconnects: Vec<u64>,
    /// Violations by kind.
    pub misbehavior: Vec<u64>,
    /// Connections opened, by direction.
    pub connections: Vec<u64>,
    /// Peers now, by direction (set by telemetry each tick).
    pub peers: Vec<u64>,
    /// Peers now that completed the handshake.
    pub peers_ready: u64,
    /// Handshakes completed.
    pub handshakes: u64,
    /// Handshake durations.
    pub handshake_ms: Histogram,
    /// Ping round trips.
    pub ping_rtt_ms: Histogram,
    /// Tx relay latency: first announcement to the transaction's arrival.
    pub tx_relay_ms: Histogram,
    /// Block download latency, getdata → block.
    pub block_download_ms: Histogram,
    /// Block announcements sent, by kind (indexed by `AnnounceKind`).
    pub block_announcements: Vec<u64>,
    /// Block relay latency: header first heard of → first announced onward.
    pub block_relay_ms: Histogram,
    /// Per new block: its header first heard of (outside IBD) → connected to our chain, however it
    /// came (whole, compact, rebuilt after a round trip).
    pub block_arrival_ms: Histogram,
    /// Addresses received in addr/addrv2.
    pub addr_received: u64,
    /// Addresses dropped by the per-peer rate limit.
    pub addr_rate_limited: u64,
    /// Addresses new to the book.
    pub addr_added: u64,
    /// getaddr requests answered.
    pub getaddr_answered: u64,
    /// Transaction entries received in inv.
    pub tx_inv_received: u64,
    /// Tx inv entries of the kind the peer should not use (txid after wtxidrelay, or the reverse).
    pub tx_inv_wrong_kind: u64,
    /// Announcements dropped because the peer was at its limit.
    pub tx_announcements_dropped: u64,
    /// Announcements shed from the noisiest peers while relay was slowed (backpressure).
    pub tx_announcements_shed: u64,
    /// Transactions requested with getdata.
    pub tx_requests_sent: u64,
    /// Transactions received that we had requested.
    pub tx_received: u64,
    /// Transactions received that we had not requested.
    pub tx_unrequested: u64,
    /// Transactions dropped because the accept queue was full (backpressure).
    pub tx_intake_dropped: u64,
    /// Transactions received that the pool already held (or that were confirmed lately).
    pub tx_duplicate: u64,
    /// Transactions received and dropped undecoded: rejected lately (by wtxid).
    pub tx_recently_rejected: u64,
    /// Transactions accepted into the pool.
    pub tx_accepted: u64,
    /// Pool transactions replaced (with descendants) by higher-paying ones.
    pub tx_replaced: u64,
    /// Pool transactions evicted to fit the memory bound.
    pub tx_evicted: u64,
    /// Transactions put in the orphanage (missing inputs).
    pub tx_orphaned: u64,
    /// Transactions of disconnected blocks back in the pool.
    pub tx_reorg_returned: u64,
    /// Transactions of the pool saved at the last stop back in it.
    pub tx_restored: u64,
    /// Pool transactions that expired (two weeks unconfirmed).
    pub tx_expired: u64,
    /// Transaction announcements sent.
    pub tx_announced: u64,
    /// Transactions sent in answer to getdata.
    pub tx_served: u64,
    /// Transaction getdata entries answered notfound.
    pub tx_notfound_sent: u64,
    /// Transaction getdata entries dropped (the peer's queue was full).
    pub tx_getdata_dropped: u64,
    /// Frame bytes inbound peers hold from their shared receive pool (a gauge set by the shell).
    pub inbound_recv_pool_bytes: u64,
    /// The most they ever held (a gauge set by the shell).
    pub inbound_recv_pool_peak_bytes: u64,
    /// Peers dropped because all send queues together passed the node-wide bound.
    pub send_total_overflows: u64,
    /// getheaders held until the asker's send queue drained (a newer one replaces a held one).
    pub getheaders_deferred: u64,
    /// getheaders sent to idle peers not known to hold our best header chain (headers_sync).
    pub headers_probes: u64,
    /// Announcements dropped from a peer's queue over its bound (the lowest feerates go first).
    pub tx_announce_dropped: u64,
    /// Rejections by reason (indexed by `TxReject`).
    pub tx_rejected: Vec<u64>,
    /// Time from entering the pool to our first announcement of it.
    pub tx_forward_ms: Histogram,
    /// Addresses discouraged for misbehavior.
    pub discouraged: u64,
    /// Bans made by escalation (discouraged again while discouraged).
    pub bans_escalated: u64,
    /// Ban commits to the store that failed (kept and retried).
    pub ban_commit_failures: u64,
    /// Coin store writes (one chain change each) that failed; the change is kept and retried, and
    /// the pool hears of no later block until it succeeds.
    pub coin_store_write_failures: u64,
    /// Header saves to the store that failed; the headers are kept in memory and retried.
    pub header_save_failures: u64,
    /// Times a socket's reader was paused for a full receive buffer.
    pub recv_pauses: u64,
    /// Inbound connections closed at accept because the shell held its cap of inbound sockets.
    pub inbound_refused_at_accept: u64,
    /// Compact blocks completed, by how (indexed by `CompactOutcome`).
    pub compact_outcomes: Vec<u64>,
    /// Transactions a compact block left us to ask for, per block rebuilt.
    pub compact_missing_txs: Histogram,
    /// Bytes received for a block rebuilt from a compact block (`cmpctblock` and `blocktxn`).
    pub compact_block_bytes: Histogram,
    /// `cmpctblock` sent to peers (pushed to high-bandwidth peers or asked for).
    pub compact_sent: u64,
    /// `getblocktxn` answered.
    pub blocktxn_served: u64,
    /// Scans of the pool, orphanage and recent refusals to rebuild a compact block (each costs
    /// the pool's size in short-id hashes).
    pub compact_pool_scans: u64,
    /// Ticks run.
    pub ticks: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            msgs_in: vec![0; Command::COUNT],
            bytes_in: vec![0; Command::COUNT],
            msgs_out: vec![0; Command::COUNT],
            bytes_out: vec![0; Command::COUNT],
            unknown_commands: 0,
            header_errors: vec![0; crate::wire::HeaderError::COUNT],
            transports: [0; 2],
            v2_refused: 0,
            v2_decoys: 0,
            v2_failures: vec![0; crate::wire::v2::transport::V2Error::ALL.len()],
            decode_errors: vec![0; crate::wire::DecodeError::COUNT],
            disconnects: vec![0; DisconnectReason::COUNT],
            misbehavior: vec![0; Misbehavior::COUNT],
            connections: vec![0; Direction::ALL.len()],
            peers: vec![0; Direction::ALL.len()],
            peers_ready: 0,
            handshakes: 0,
            handshake_ms: Histogram::latency_ms(),
            ping_rtt_ms: Histogram::latency_ms(),
            tx_relay_ms: Histogram::latency_ms(),
            block_download_ms: Histogram::latency_ms(),
            block_announcements: vec![0; crate::resources::reasons::AnnounceKind::COUNT],
            block_relay_ms: Histogram::latency_ms(),
            block_arrival_ms: Histogram::latency_ms(),
            addr_received: 0,
            addr_rate_limited: 0,
            addr_added: 0,
            getaddr_answered: 0,
            tx_inv_received: 0,
            tx_inv_wrong_kind: 0,
            tx_announcements_dropped: 0,
            tx_announcements_shed: 0,
            tx_requests_sent: 0,
            tx_received: 0,
            tx_unrequested: 0,
            tx_intake_dropped: 0,
            tx_duplicate: 0,
            tx_recently_rejected: 0,
            tx_accepted: 0,
            tx_replaced: 0,
            tx_evicted: 0,
            tx_orphaned: 0,
            tx_reorg_returned: 0,
            tx_restored: 0,
            tx_expired: 0,
            tx_announced: 0,
            tx_served: 0,
            tx_notfound_sent: 0,
            tx_getdata_dropped: 0,
            tx_announce_dropped: 0,
            getheaders_deferred: 0,
            headers_probes: 0,
            send_total_overflows: 0,
            inbound_recv_pool_bytes: 0,
            inbound_recv_pool_peak_bytes: 0,
            tx_rejected: vec![0; crate::mempool::policy::TxReject::COUNT],
            tx_forward_ms: Histogram::latency_ms(),
            discouraged: 0,
            bans_escalated: 0,
            ban_commit_failures: 0,
            coin_store_write_failures: 0,
            header_save_failures: 0,
            recv_pauses: 0,
            inbound_refused_at_accept: 0,
            compact_outcomes: vec![0; crate::resources::reasons::CompactOutcome::COUNT],
            compact_missing_txs: Histogram::with_bounds(&[0, 1, 2, 5, 10, 25, 50, 100, 250, 1_000]),
            compact_block_bytes: Histogram::with_bounds(&[
                1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000, 4_000_000,
            ]),
            compact_sent: 0,
            blocktxn_served: 0,
            compact_pool_scans: 0,
            ticks: 0,
        }
    }
}

impl Metrics {
    /// Counts a refused header.
    pub fn header_error(&mut self, e: HeaderError) {
        self.header_errors[e as usize] += 1;
    }

    /// Counts a refused payload.
    pub fn decode_error(&mut self, e: DecodeError) {
        self.decode_errors[e as usize] += 1;
    }

    /// Disconnects counted for `reason`.
    pub fn disconnects_for(&self, reason: DisconnectReason) -> u64 {
        self.disconnects[reason as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_quantiles() {
        let mut h = Histogram::with_bounds(&[10, 100]);
        for v in [1, 10, 11, 100, 1000] {
            h.record(v);
        }
        assert_eq!(h.counts, vec![2, 2, 1]);
        assert_eq!(h.count, 5);
        assert_eq!(h.sum, 1122);
        assert_eq!(h.quantile(0.4), Some(10));
        assert_eq!(h.quantile(0.8), Some(100));
        assert_eq!(h.quantile(1.0), Some(u64::MAX));
    }
}
