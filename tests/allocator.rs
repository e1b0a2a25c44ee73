//! The node's malloc settings (`oni::allocator`), alone in their process: the allocator's
//! counters are process-wide, so no other test may allocate beside this one.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn glibc_takes_the_fixed_thresholds_and_large_buffers_stay_out_of_the_heaps() {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let counters = || unsafe { libc::mallinfo2() };
    // First, as the node does: settings made before any large buffer exists. (Without them the
    // first freed 1 MiB block raises glibc's bound and the next ones come from a heap: the loop
    // below fails on its second round.)
    assert!(oni::allocator::tune());
    let before = counters().hblkhd;
    for _ in 0..3 {
        let buf = vec![3u8; 1 << 20];
        assert!(counters().hblkhd >= before + (1 << 20), "with the settings every 1 MiB buffer is mapped");
        drop(buf);
        assert!(counters().hblkhd < before + (1 << 20), "and unmapped when freed");
    }
    let small = vec![4u8; (oni::allocator::MMAP_THRESHOLD_BYTES as usize) / 2];
    assert!(counters().hblkhd < before + small.len(), "a buffer under the bound is in a heap");
}
