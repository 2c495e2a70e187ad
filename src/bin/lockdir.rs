//! `lockdir`: see `lockdir --help` and `lockutils::cli::lockdir`.

fn main() {
    lockutils::cli::lockdir::main()
}
