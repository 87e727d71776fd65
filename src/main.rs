//! The finhook binary: everything lives in the library; see `finhook --help`.

/// mimalloc: the webhook path allocates small buffers per request, and glibc's allocator took
/// about 14 % of finhook's CPU under load (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    finhook::cli::main()
}
