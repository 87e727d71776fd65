//! The finhook binary: everything lives in the library; see `finhook --help`.

/// mimalloc: the webhook path allocates small buffers per request, and glibc's allocator took
/// about 14 % of finhook's CPU under load (see BENCHMARKS.md). Built with `no_thp`: on kernels
/// with transparent huge pages in `madvise` mode mimalloc asked for them, and each touched 2 MiB
/// page counted whole in RSS (8 MiB of an idle finhook's 10 MiB of heap). It is not the
/// allocator of librdkafka, which keeps glibc's: given mimalloc too (`override`), finhook's peak
/// RSS went from 44 to 99 MiB for no measurable gain in speed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    finhook::cli::main()
}
