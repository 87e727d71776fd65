//! The finhook binary: everything lives in the library; see `finhook --help`.

fn main() -> std::process::ExitCode {
    finhook::cli::main()
}
