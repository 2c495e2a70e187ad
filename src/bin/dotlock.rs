//! `dotlock`: see `dotlock --help` and `lockutils::cli::dotlock`.

fn main() {
    lockutils::cli::dotlock::main()
}
