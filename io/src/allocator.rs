//! Allocator tuning, applied before the async runtime starts any thread.
//!
//! glibc gives threads their own malloc arenas (up to 8 per core). Part buffers are allocated on
//! one runtime thread and freed on another, and the freed memory stays cached in whichever arena
//! held it. Two arenas bound that: on the export benchmark (deploy/local/bench_export.sh, two
//! workers) the larger worker peak RSS was 81–106 MiB over seven runs with glibc's default and
//! 76–87 MiB over seven with two arenas, at the same throughput within the runs' noise. The
//! environment's `MALLOC_ARENA_MAX`, when set, wins; musl builds have no arenas.

/// Limit glibc to two malloc arenas unless `MALLOC_ARENA_MAX` says otherwise. Call first thing
/// in `main`, before any thread exists.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only tunes the allocator; no other thread exists yet to race with it.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
