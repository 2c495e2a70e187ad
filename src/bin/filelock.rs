//! `filelock` (and, as `lockfile`, procmail's): see `lockutils::cli::filelock`.
//! Enters at the C `main`: see `lockutils::c_main!`.
#![no_main]

lockutils::c_main!(lockutils::cli::filelock::main);
