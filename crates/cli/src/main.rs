//! `chatflow`: run chatflow blocks and flows from the command line.
//!
//! Run `chatflow --help` for the commands and their examples.

mod cli;

fn main() -> std::process::ExitCode {
    fix_mmap_threshold();
    cli::main()
}

/// glibc raises its mmap threshold (up to 32 MiB) each time a large
/// mmapped block is freed; after that, the multi-megabyte buffers hostile
/// Code blocks make the host allocate (property values, HTTP bodies,
/// messages) come from the heap and stay resident when freed, and a
/// long-running `chatflow serve` grows by hundreds of MiB (docs/benchmarks.md,
/// "Soak"). Fixing the threshold at glibc's own initial value (128 KiB)
/// keeps such buffers in mmap, returned to the system when freed. An
/// operator's `MALLOC_MMAP_THRESHOLD_` still wins.
fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before
        // any thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        }
    }
}
