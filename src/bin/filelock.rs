//! `filelock` (and, as `lockfile`, procmail's): see `lockutils::cli::filelock`.

fn main() {
    lockutils::cli::filelock::main()
}
