//! `dotlock`: see `dotlock --help` and `lockutils::cli::dotlock`.
//! Enters at the C `main`: see `lockutils::c_main!`.
#![no_main]

lockutils::c_main!(lockutils::cli::dotlock::main);
