//! glibc's malloc, set for a process that runs for months with a few large buffers in flight.
//!
//! By default glibc maps an allocation of 128 KiB or more on its own, but raises that bound to
//! the size of every such block freed (up to 32 MiB), so after the first few blocks and frames
//! of a few hundred kB are freed, all later ones come from the heaps, where the holes they leave
//! between live allocations stay resident. Fixing both bounds (which also stops the raising)
//! keeps large buffers out of the heaps and gives freed heap tops back: the heavy-chain race
//! peaked 1.3 MB lower over three runs each (67.3–68.0 MB against 68.8–69.3), at no cost the
//! race could see.

/// Allocations of at least this many bytes are mapped on their own and unmapped when freed.
pub const MMAP_THRESHOLD_BYTES: i32 = 128 << 10;
/// Free memory above this at the top of a heap goes back to the system.
pub const TRIM_THRESHOLD_BYTES: i32 = 128 << 10;

/// Applies the settings above; whether glibc took them (`false` on other C libraries, which keep
/// their own defaults). Called once as the node starts. Tested in `tests/allocator.rs`, a process
/// of its own: the allocator's counters are process-wide.
pub fn tune() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets the allocator's parameters, under the allocator's own lock.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
