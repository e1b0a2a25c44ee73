use super::*;
use crate::chain::test_vectors::mine_chain;
use crate::wire::headers::block_hash;
use crate::wire::Network;

fn setup(period: u32, buffer: usize) -> (ChainParams, HeaderTree) {
    let mut p = ChainParams::for_network(Network::Regtest);
    p.commitment_period = period;
    p.redownload_buffer = buffer;
    let t = HeaderTree::new(&p);
    (p, t)
}

fn regtest_work(headers: u64) -> Work {
    Work::from_be_bytes(U256([2 * headers, 0, 0, 0]).to_be_bytes())
}

fn with_hashes(raw: &[[u8; HEADER_BYTES]]) -> Vec<([u8; HEADER_BYTES], BlockHash)> {
    raw.iter().map(|r| (*r, block_hash(r))).collect()
}

const NOW: i64 = 1_800_000_000;

#[test]
fn presync_counts_work_then_redownload_checks_commitments_and_releases_in_order() {
    let (p, t) = setup(10, 50);
    let g = p.genesis.block_hash();
    let chain = with_hashes(&mine_chain(g, p.genesis.time, 300, 1));
    // genesis counts 2; reaching 2 + 2 × 250 takes 250 headers
    let mut s = HeadersPresync::new(&t, 0, &p, regtest_work(251), NOW, [5, 6, 7, 8]);
    let o = s.process(&chain[..100], true, &p);
    assert!(o.request_more && o.release.is_empty() && o.aborted.is_none());
    assert_eq!(s.phase(), Phase::Presync);
    assert_eq!(s.locator_tip(), chain[99].1);
    let o = s.process(&chain[100..200], true, &p);
    assert!(o.request_more && s.phase() == Phase::Presync);
    let o = s.process(&chain[200..260], false, &p);
    assert!(o.request_more, "enough work: ask again from the start");
    assert_eq!(s.phase(), Phase::Redownload);
    assert_eq!(s.locator_tip(), g);
    let mut released = vec![];
    for (range, full) in [(0..100, true), (100..200, true), (200..300, false)] {
        let o = s.process(&chain[range], full, &p);
        assert_eq!(o.aborted, None);
        released.extend(o.release);
    }
    assert_eq!(s.phase(), Phase::Done);
    assert_eq!(released.len(), 300);
    assert!(released.iter().zip(&chain).all(|(a, (b, _))| a == b), "released in chain order");
}

#[test]
fn redownload_buffer_holds_back_headers_until_enough_work() {
    let (p, t) = setup(10, 50);
    let g = p.genesis.block_hash();
    let chain = with_hashes(&mine_chain(g, p.genesis.time, 200, 1));
    let mut s = HeadersPresync::new(&t, 0, &p, regtest_work(181), NOW, [1, 2, 3, 4]);
    s.process(&chain[..200], false, &p);
    assert_eq!(s.phase(), Phase::Redownload);
    let o = s.process(&chain[..100], true, &p);
    assert_eq!(o.release.len(), 50, "only what exceeds the 50-header buffer");
    let o = s.process(&chain[100..200], false, &p);
    assert_eq!(o.release.len(), 150);
}

#[test]
fn a_full_redownload_buffer_stays_within_the_stated_bound() {
    let (p, t) = setup(10, 3_000);
    let g = p.genesis.block_hash();
    let chain = with_hashes(&mine_chain(g, p.genesis.time, 10_000, 1));
    let mut s = HeadersPresync::new(&t, 0, &p, regtest_work(8_000), NOW, [1, 2, 3, 4]);
    for chunk in chain.chunks(2_000) {
        if s.phase() == Phase::Redownload {
            break;
        }
        s.process(chunk, true, &p);
    }
    assert_eq!(s.phase(), Phase::Redownload);
    // Redownload in full messages, short of the work that releases everything: the buffer holds
    // 3,000 and takes a 2,000-header message on top.
    let mut most = 0;
    for chunk in chain[..6_000].chunks(2_000) {
        let o = s.process(chunk, true, &p);
        assert!(o.aborted.is_none());
        most = most.max(s.heap_bytes());
        assert!(s.heap_bytes() <= s.heap_bound(), "{} over {}", s.heap_bytes(), s.heap_bound());
    }
    // 1,000 commitment bits are 128 bytes; the buffer never grows past one message over its size
    // (doubling would have made it 8,192 slots).
    assert!(most >= 5_000 * 80, "the buffer filled: {most} bytes");
    assert!(most <= 5_000 * 80 + 1_024, "{most} heap bytes");
}

#[test]
fn a_different_chain_on_redownload_fails_its_commitments() {
    let (p, t) = setup(4, 50);
    let g = p.genesis.block_hash();
    let honest = with_hashes(&mine_chain(g, p.genesis.time, 200, 1));
    let other = with_hashes(&mine_chain(g, p.genesis.time, 200, 2));
    let mut s = HeadersPresync::new(&t, 0, &p, regtest_work(190), NOW, [9, 9, 9, 9]);
    s.process(&honest, false, &p);
    assert_eq!(s.phase(), Phase::Redownload);
    let o = s.process(&other, false, &p);
    // 47 commitment bits: the odds that all match by chance are 2^-47
    assert_eq!(o.aborted, Some(Abort::CommitmentMismatch));
    assert_eq!(s.phase(), Phase::Done);
    assert!(o.release.len() < 50);
}

#[test]
fn a_non_continuous_or_short_low_work_chain_aborts() {
    let (p, t) = setup(10, 50);
    let g = p.genesis.block_hash();
    let chain = with_hashes(&mine_chain(g, p.genesis.time, 20, 1));
    let mut s = HeadersPresync::new(&t, 0, &p, regtest_work(1000), NOW, [1, 1, 1, 1]);
    assert_eq!(s.process(&chain[1..], true, &p).aborted, Some(Abort::NonContinuous));
    let mut s = HeadersPresync::new(&t, 0, &p, regtest_work(1000), NOW, [1, 1, 1, 1]);
    assert_eq!(s.process(&chain, false, &p).aborted, Some(Abort::Incomplete));
}

#[test]
fn one_hundred_thousand_low_work_headers_stay_within_a_few_hundred_bytes() {
    let (p, t) = setup(275, 7017);
    let g = p.genesis.block_hash();
    let chain = with_hashes(&mine_chain(g, p.genesis.time, 100_000, 1));
    let mut s = HeadersPresync::new(&t, 0, &p, Work::from_be_bytes([0xff; 32]), NOW, [1, 2, 3, 4]);
    for chunk in chain.chunks(2_000) {
        let o = s.process(chunk, true, &p);
        assert!(o.request_more && o.release.is_empty());
        // 100,000 / 275 ≈ 364 commitment bits: 6 words
        assert!(s.heap_bytes() <= 64, "{} heap bytes", s.heap_bytes());
    }
    assert_eq!(s.presync_height(), 100_000);
    assert!(s.heap_bytes() <= s.heap_bound());
}

#[test]
fn a_chain_longer_than_time_allows_is_dropped() {
    let (p, t) = setup(10, 50);
    let g = p.genesis.block_hash();
    // now is 1,000 s after genesis: at most 6 × (1,000 + 7,200) = 49,200 blocks → 4,920 commitments
    let now = p.genesis.time as i64 + 1_000;
    let chain = with_hashes(&mine_chain(g, p.genesis.time, 50_000, 1));
    let mut s = HeadersPresync::new(&t, 0, &p, Work::from_be_bytes([0xff; 32]), now, [1, 2, 3, 4]);
    let mut aborted = None;
    for chunk in chain.chunks(2_000) {
        let o = s.process(chunk, true, &p);
        if o.aborted.is_some() {
            aborted = o.aborted;
            break;
        }
    }
    assert_eq!(aborted, Some(Abort::TooManyCommitments));
    assert!(s.presync_height() > 49_000 && s.presync_height() <= 49_220);
}
