//! Judges a run: each expectation becomes a row with pass/fail and the figure it measured, so a
//! failing row says by how much, and a passing one says with what margin.

use super::outcome::Outcome;
use super::report::Row;
use super::sim::HONEST;
use super::spec::Expectation;
use super::trace::Closed;

/// Honest pings sent in the last stretch of a run may still be in flight: they are not counted.
/// The stretch covers a round trip through the modelled network plus a second.
pub fn honest_grace_ms(latency_ms: u64, tick_ms: u64) -> u64 {
    1_000 + 4 * (latency_ms + tick_ms)
}

/// Evaluates every expectation against the outcome.
pub fn evaluate(expect: &[Expectation], out: &Outcome, grace_ms: u64) -> Vec<Row> {
    expect.iter().map(|e| row(e, out, grace_ms)).collect()
}

fn row(e: &Expectation, out: &Outcome, grace_ms: u64) -> Row {
    let (pass, measured) = match e {
        Expectation::Disconnected { bot, within_s, reason } => {
            let within_ms = (within_s * 1_000.0).round() as u64;
            let (mut ok, mut pending, mut total) = (0, 0, 0);
            let (mut max_ms, mut max_frames, mut max_bytes) = (0, 0, 0);
            let mut first_bad = None;
            for rec in conns_of(out, bot) {
                total += 1;
                match rec.closed {
                    Some(Closed::ByNode { at_ms, reason: r, frames_sent, bytes_sent })
                        if r == *reason && at_ms - rec.opened_ms <= within_ms =>
                    {
                        ok += 1;
                        max_ms = max_ms.max(at_ms - rec.opened_ms);
                        max_frames = max_frames.max(frames_sent);
                        max_bytes = max_bytes.max(bytes_sent);
                    }
                    Some(Closed::ByNode { at_ms, reason: r, .. }) => {
                        first_bad.get_or_insert(format!(
                            "one closed for {} after {:.2} s",
                            r.label(),
                            (at_ms - rec.opened_ms) as f64 / 1e3
                        ));
                    }
                    Some(Closed::ByBot { at_ms }) => {
                        first_bad.get_or_insert(format!(
                            "one closed by the bot itself after {:.2} s",
                            (at_ms - rec.opened_ms) as f64 / 1e3
                        ));
                    }
                    None if out.end_ms - rec.opened_ms > within_ms => {
                        first_bad.get_or_insert(format!(
                            "one still open after {:.2} s",
                            (out.end_ms - rec.opened_ms) as f64 / 1e3
                        ));
                    }
                    None => pending += 1,
                }
            }
            let mut m = format!(
                "{ok}/{total} closed for {} within {:.2} s; up to {max_frames} msgs / {max_bytes} B sent before",
                reason.label(),
                max_ms as f64 / 1e3
            );
            if pending > 0 {
                m.push_str(&format!("; {pending} opened too late to judge"));
            }
            if let Some(b) = &first_bad {
                m.push_str(&format!("; {b}"));
            }
            (ok > 0 && first_bad.is_none(), m)
        }
        Expectation::DisconnectedCount { bot, reason, at_least } => {
            let n = conns_of(out, bot)
                .filter(|r| matches!(r.closed, Some(Closed::ByNode { reason: x, .. }) if x == *reason))
                .count() as u64;
            (n >= *at_least, format!("{n} closed for {}", reason.label()))
        }
        Expectation::ConnectionsAtLeast { bot, at_least } => {
            let n = conns_of(out, bot).count() as u64;
            (n >= *at_least, format!("{n} connections"))
        }
        Expectation::ReceivedPerTickAtMost { bot, command, at_most } => {
            let cmd = *command as usize;
            let of_bot = out.instances.iter().filter(|i| i.label == bot.as_str());
            let max = of_bot.clone().map(|i| i.max_per_tick[cmd] as u64).max().unwrap_or(0);
            let total: u64 = of_bot.map(|i| i.recv_total[cmd]).sum();
            // A bot that never got one proves nothing about the bound.
            (max <= *at_most && total > 0, format!("max {max} {} per tick; {total} in all", command.name()))
        }
        Expectation::SentBytesAtMost { bot, at_most } => {
            let (n, max) = conns_of(out, bot).fold((0u64, 0u64), |(n, m), r| (n + 1, m.max(r.bytes_sent)));
            // A bot that never connected proves nothing about the bound.
            (n > 0 && max <= *at_most, format!("up to {max} B sent on one of {n} connections"))
        }
        Expectation::ReceivedBytesAtMost { bot, at_most } => {
            let (n, max) = conns_of(out, bot).fold((0u64, 0u64), |(n, m), r| (n + 1, m.max(r.bytes_recv)));
            (n > 0 && max <= *at_most, format!("up to {max} B received on one of {n} connections"))
        }
        Expectation::HonestServed { min_share } => {
            let cutoff = out.end_ms.saturating_sub(grace_ms);
            let (mut sent, mut answered) = (0u64, 0u64);
            for p in honest_pings(out).filter(|p| p.sent_ms <= cutoff) {
                sent += 1;
                answered += p.rtt_ms.is_some() as u64;
            }
            let share = if sent == 0 { 0.0 } else { answered as f64 / sent as f64 };
            (sent > 0 && share >= *min_share, format!("{answered}/{sent} honest pings answered ({share:.4})"))
        }
        Expectation::HonestPingP99BelowMs(bound) => {
            let mut rtts: Vec<u64> = honest_pings(out).filter_map(|p| p.rtt_ms).collect();
            rtts.sort_unstable();
            match percentile(&rtts, 0.99) {
                Some(p99) => (
                    p99 < *bound,
                    format!("p99 {p99} ms, p50 {} ms over {} pongs", percentile(&rtts, 0.5).unwrap_or(0), rtts.len()),
                ),
                None => (false, "no honest pong at all".into()),
            }
        }
        Expectation::NoHonestDisconnected => never_closed(out, HONEST),
        Expectation::NeverDisconnected { bot } => never_closed(out, bot),
        Expectation::PeakPeersAtMost(n) => (out.peak_peers <= *n, format!("peak {} peers", out.peak_peers)),
        Expectation::PeakTxTrackedAtMost(n) => {
            (out.peak_tx_tracked <= *n, format!("peak {} transactions tracked", out.peak_tx_tracked))
        }
        Expectation::ValidatedHeightAtLeast(n) => {
            let c = out.chain;
            (
                c.validated_height >= *n,
                format!("validated height {} (best header {})", c.validated_height, c.best_height),
            )
        }
        Expectation::HeaderTreeAtMost(n) => {
            (out.chain.headers <= *n, format!("{} headers in the tree", out.chain.headers))
        }
        Expectation::OrphanageWithinBounds { latency_score, weight_per_peer } => {
            let t = &out.tx;
            (
                t.peak_latency_score <= *latency_score && t.peak_weight_per_peer <= *weight_per_peer,
                format!(
                    "peak latency score {}, peak {} WU per peer holding orphans (total {} WU, up to {} peers); \
                     peak {} orphans / {} announcements; {} at the end",
                    t.peak_latency_score,
                    t.peak_weight_per_peer,
                    t.peak_weight,
                    t.peak_orphan_peers,
                    t.peak_orphans,
                    t.peak_announcements,
                    t.end_orphans
                ),
            )
        }
        Expectation::OrphansEvictedAtLeast(n) => (
            out.tx.orphans_evicted >= *n,
            format!("{} orphans evicted; {} put in the orphanage", out.tx.orphans_evicted, tx_orphaned(out)),
        ),
        Expectation::HonestTxsInPool => honest_txs_in_pool(out),
        Expectation::MetricAtLeast { metric, at_least } => {
            let v = super::spec::metric_value(out.world.resource::<oni_systems::resources::Metrics>(), metric);
            (v.is_some_and(|v| v >= *at_least), format!("{metric} = {}", v.unwrap_or(0)))
        }
        Expectation::MetricAtMost { metric, at_most } => {
            let v = super::spec::metric_value(out.world.resource::<oni_systems::resources::Metrics>(), metric);
            (v.is_some_and(|v| v <= *at_most), format!("{metric} = {}", v.unwrap_or(0)))
        }
        Expectation::RssBelowMb(mb) => match out.live {
            None => (true, "n/a in sim mode (RSS is measured live only)".into()),
            Some(l) => match l.peak_rss_kb {
                Some(kb) => (kb < mb * 1024, format!("peak RSS {:.1} MB", kb as f64 / 1024.0)),
                None => (false, "could not read /proc/self/status".into()),
            },
        },
        Expectation::PeakSendQueueBytesAtMost(n) => {
            (out.peak_send_bytes <= *n, format!("peak {} B queued or unacked for one peer", out.peak_send_bytes))
        }
        Expectation::PeakRecvBufferBytesAtMost(n) => {
            (out.peak_recv_bytes <= *n, format!("peak {} B buffered for one peer", out.peak_recv_bytes))
        }
        Expectation::PeakReaderBytesAtMost(n) => match out.peak_reader_bytes {
            None => (true, "n/a in live mode (the bridge's reader is not sampled)".into()),
            Some(b) => (b <= *n, format!("peak {b} B held for one frame in progress")),
        },
        Expectation::NoLeakedState => {
            let s = out.end;
            (
                s.index_len == s.peers && s.nonces == s.awaiting_verack,
                format!(
                    "index {} / peers {}; nonces {} / awaiting verack {}",
                    s.index_len, s.peers, s.nonces, s.awaiting_verack
                ),
            )
        }
    };
    Row { expectation: e.describe(), pass, measured }
}

/// No connection labelled `label` was closed by the node (and there was at least one).
fn never_closed(out: &Outcome, label: &str) -> (bool, String) {
    let total = conns_of(out, label).count();
    let closed: Vec<String> = conns_of(out, label)
        .filter_map(|r| match r.closed {
            Some(Closed::ByNode { reason, .. }) => Some(reason.label().to_string()),
            _ => None,
        })
        .collect();
    let m = if closed.is_empty() {
        format!("0/{total} {label} connections closed by the node")
    } else {
        format!("{}/{total} {label} connections closed by the node (first: {})", closed.len(), closed[0])
    };
    (total > 0 && closed.is_empty(), m)
}

fn tx_orphaned(out: &Outcome) -> u64 {
    out.world.get_resource::<oni_systems::resources::Metrics>().map_or(0, |m| m.tx_orphaned)
}

/// Every transaction a relayer held is in the pool at the end; a run without relayers proves nothing.
fn honest_txs_in_pool(out: &Outcome) -> (bool, String) {
    let logs: Vec<_> = out.instances.iter().filter_map(|i| i.tx_log.as_ref()).collect();
    let mut held: Vec<bitcoin::Txid> = logs.iter().flat_map(|l| l.held.iter().copied()).collect();
    held.sort_unstable();
    held.dedup();
    let mut orphans: Vec<bitcoin::Txid> = logs.iter().flat_map(|l| l.pushed_as_orphans.iter().copied()).collect();
    orphans.sort_unstable();
    orphans.dedup();
    let in_pool = |t: &bitcoin::Txid| out.tx.pool.binary_search(t).is_ok();
    let got = held.iter().filter(|t| in_pool(t)).count();
    let orphans_got = orphans.iter().filter(|t| in_pool(t)).count();
    let served: u64 = logs.iter().map(|l| l.served).sum();
    let announced: u64 = logs.iter().map(|l| l.announced).sum();
    (
        !held.is_empty() && got == held.len(),
        format!(
            "{got}/{} relayed txs in the pool ({} in all); {orphans_got}/{} pushed as orphans got in \
             (relayers held up to {} orphans at once); {announced} announced by inv, {served} served on getdata",
            held.len(),
            out.tx.pool.len(),
            orphans.len(),
            out.tx.peak_relayer_orphans
        ),
    )
}

fn conns_of<'a>(out: &'a Outcome, label: &'a str) -> impl Iterator<Item = &'a super::trace::ConnRecord> + 'a {
    out.conns.iter().filter(move |r| out.instances[r.instance].label == label)
}

fn honest_pings(out: &Outcome) -> impl Iterator<Item = &super::bots::PingRecord> {
    out.instances.iter().filter_map(|i| i.ping_log.as_ref()).flat_map(|l| l.pings.iter())
}

/// The nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentile() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
