//! What the kernel allocates for us must be freed: `btck_block_tree_entry_get_block_header` hands
//! out a new header per call, which the bindings' `BlockTreeEntry::header` never destroyed (one
//! per block connected, one per active-chain block at every open). Measured with glibc's own
//! heap counters, since the kernel allocates in C++, beside Rust's allocator; alone in its binary
//! so no other test allocates meanwhile.

use bitcoin::BlockHash;
use oni::validation::{BlockValidator, KernelConfig, KernelValidator};
use oni_systems::wire::Network;

/// Bytes in use in glibc's heap (every arena).
fn heap_in_use() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    unsafe { libc::mallinfo2() }.uordblks
}

#[test]
fn reading_a_header_from_the_block_tree_allocates_nothing_that_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kernel = KernelValidator::open(KernelConfig::new(Network::Regtest, dir.path())).expect("kernel");
    let genesis: BlockHash = kernel.tip().hash;
    let header = kernel.header_for(&genesis).expect("genesis is in the block tree");
    assert_eq!(header.height, 0);
    const CALLS: usize = 100_000;
    let before = heap_in_use();
    for _ in 0..CALLS {
        assert!(kernel.header_for(&genesis).is_some());
    }
    let grown = heap_in_use().saturating_sub(before);
    // A leaked 80-byte header is ≥ 96 bytes of heap: 9.6 MB over the calls.
    assert!(grown < CALLS * 8, "the heap grew {grown} bytes over {CALLS} header reads");
}
