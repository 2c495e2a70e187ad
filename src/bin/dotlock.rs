//! `dotlock`: see `dotlock --help` and `lockutils::cli::dotlock`.
#![no_main]

/// Entered from the C runtime: the Rust runtime's own start-up (stack
/// guard, SIGPIPE ignored) is not needed by a short-lived tool, and not
/// paying for it is part of starting as fast as the C tools.
#[unsafe(no_mangle)]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    lockutils::cli::dotlock::main()
}
