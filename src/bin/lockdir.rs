//! `lockdir`: see `lockdir --help` and `lockutils::cli::lockdir`.
//! Enters at the C `main`: see `lockutils::c_main!`.
#![no_main]

lockutils::c_main!(lockutils::cli::lockdir::main);
