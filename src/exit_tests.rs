//! Unit tests of `exit`.

use super::*;
use std::path::PathBuf;

fn busy() -> Error {
    Error::Busy {
        path: PathBuf::from("L"),
        attempts: 1,
    }
}
fn no_dir() -> Error {
    Error::NoDirectory {
        dir: PathBuf::from("d"),
    }
}

/// Every outcome under every program, in one table: the statuses the
/// README and the man pages document.
#[test]
fn the_exit_status_table() {
    use Outcome as O;
    use io::ErrorKind as K;
    let sig = |s| Exit::Signal(s);
    let st = Exit::Status;
    let term = Sig::from(nix::sys::signal::Signal::SIGTERM);
    let native = Program::Native;
    let dlf = Program::Dotlockfile { passthrough: false };
    let dlf_p = Program::Dotlockfile { passthrough: true };
    let fl = Program::Filelock;
    let lf = Program::Lockfile { invert: false };
    let lf_inv = Program::Lockfile { invert: true };
    let lfp = Program::LockfileProgs;
    #[rustfmt::skip]
    let table: Vec<(Outcome, [Exit; 7])> = vec![
        //                                         native  dotlockfile -P      filelock lockfile -!  lockfile-progs
        (O::Success,                             [st(0), st(0), st(0),   st(0), st(0),  st(73), st(0)]),
        (O::Shown,                               [st(0), st(0), st(0),   st(0), st(64), st(64), st(0)]),
        (O::Usage,                               [st(1), st(1), st(1),   st(1), st(64), st(64), st(1)]),
        (O::BadValue,                            [st(5), st(5), st(5),   st(1), st(64), st(64), st(1)]),
        (O::NoLock,                              [st(1), st(1), st(1),   st(1), st(64), st(64), st(255)]),
        (O::Stale,                               [st(9), st(9), st(9),   st(9), st(69), st(69), st(1)]),
        (O::NotLocked,                           [st(0), st(0), st(0),   st(1), st(69), st(69), st(1)]),
        (O::Refused,                             [st(1), st(1), st(1),   st(1), st(71), st(71), st(1)]),
        (O::ActionFailed(busy()),                [st(1), st(1), st(1),   st(1), st(64), st(64), st(255)]),
        (O::Failed(busy()),                      [st(4), st(4), st(4),   st(1), st(73), st(0), st(4)]),
        (O::Failed(no_dir()),                    [st(2), st(5), st(5),   st(1), st(69), st(69), st(2)]),
        (O::Failed(Error::Orphaned),             [st(7), st(7), st(7),   st(1), st(69), st(69), st(4)]),
        (O::Failed(Error::ParentDied),           [st(5), st(5), st(5),   st(1), st(69), st(69), st(4)]),
        (O::Signal(term),                        [sig(term), sig(term), sig(term), sig(term), st(75), st(75), sig(term)]),
        (O::Command(ChildEnd::Exited(3)),        [st(3), st(0), st(3),   st(3), st(69), st(69), st(1)]),
        (O::Command(ChildEnd::Signaled(term)),   [sig(term), st(0), st(143), sig(term), st(69), st(69), st(1)]),
        (O::NotStarted(K::PermissionDenied),     [st(126), st(0), st(127), st(126), st(69), st(69), st(1)]),
        (O::NotStarted(K::NotFound),             [st(127), st(0), st(127), st(127), st(69), st(69), st(1)]),
        (O::NotStarted(K::OutOfMemory),          [st(5), st(5), st(5),   st(5), st(69), st(69), st(1)]),
    ];
    for (outcome, want) in table {
        let got = [native, dlf, dlf_p, fl, lf, lf_inv, lfp].map(|p| outcome.exit(p));
        assert_eq!(got, want, "{outcome:?}");
    }
}

#[test]
fn library_errors_map_to_liblockfiles_numbers() {
    let p = || PathBuf::from("x");
    let io = || io::Error::from_raw_os_error(5);
    let cases = [
        (Error::NameTooLong { path: p() }, 1),
        (
            Error::CreateTemp {
                path: p(),
                source: io(),
            },
            2,
        ),
        (
            Error::ShortWrite {
                path: p(),
                source: io(),
            },
            3,
        ),
        (Error::TimedOut { path: p() }, 4),
        (Error::LockIsSymlink { path: p() }, 5),
        (
            Error::NotALock {
                path: p(),
                entry: p(),
            },
            5,
        ),
        (
            Error::StaleNotRemoved {
                path: p(),
                source: io(),
            },
            8,
        ),
    ];
    for (e, code) in cases {
        assert_eq!(e.exit_code().code(), code, "{e:?}");
    }
}
