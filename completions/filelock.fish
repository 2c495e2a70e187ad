complete -c filelock -n 'not __filelock_command >/dev/null' -s s -d 'Seconds between attempts [default: 1]' -r -f
complete -c filelock -n 'not __filelock_command >/dev/null' -s r -d 'Retries for each lock after its first attempt [default: 10, 1 s apart, then exit 1]; -1 for forever' -r -f
complete -c filelock -n 'not __filelock_command >/dev/null' -s i -d 'Seconds between attempts, as dotlock\'s -i (the same as -s)' -r -f
complete -c filelock -n 'not __filelock_command >/dev/null' -l timeout -d 'Give up after DURATION of waiting for the whole set (seconds; 0.5, 200ms, 2m allowed); without -r, retries are then unbounded' -r -f
complete -c filelock -n 'not __filelock_command >/dev/null' -l stale-after -d 'A lock whose holder cannot be proven alive or dead is stale after DURATION [default: 300]; with a COMMAND the locks are touched every third of it (at most every 30 s)' -r -f
complete -c filelock -n 'not __filelock_command >/dev/null' -l on-lost -d 'With a COMMAND: when a lock is found lost at a keep-alive touch, warn (the default), or also send the command SIGTERM (term) or SIGKILL (kill)' -r -f -a "warn\t'Say so on stderr, at once'
term\t'Say so, and send the command SIGTERM'
kill\t'Say so, and send the command SIGKILL'"
complete -c filelock -n 'not __filelock_command >/dev/null' -s E -l conflict-exit-code -d 'With a COMMAND: exit N when the locks cannot be had (retries or --timeout spent) [default: 1]; -E 0 makes "still running from last time" a success' -r -f
complete -c filelock -n 'not __filelock_command >/dev/null' -s l -d 'Lock (the default action)'
complete -c filelock -n 'not __filelock_command >/dev/null' -l list -d 'List every lock in the directory named instead of a lock: its kind (dot-lock, lock directory, slot, share, want, gate, break lock, debris), state and holder, each lock\'s members under it'
complete -c filelock -n 'not __filelock_command >/dev/null' -l stale -d 'With --list: only stale locks and debris'
complete -c filelock -n 'not __filelock_command >/dev/null' -l clean -d 'With --list: remove the stale locks and debris that are ours to remove (each only if still the one judged), saying each'
complete -c filelock -n 'not __filelock_command >/dev/null' -l check -d 'Diagnose the directory named instead of a lock: is it safe to lock in (filesystem, link(2), clock, identity, permissions, space)? Exit 10 if anything is unsafe'
complete -c filelock -n 'not __filelock_command >/dev/null' -s q -d 'Quiet: no "busy" line when the lock cannot be had (other failures still say theirs)'
complete -c filelock -n 'not __filelock_command >/dev/null' -l fence -d 'Fencing token: once the lock is taken, claim a number larger than every earlier holder\'s (in LOCK.fence beside it), record it, and print it (with --slots: "SLOT TOKEN"), or give it to the COMMAND as $DOTLOCK_TOKEN'
complete -c filelock -n 'not __filelock_command >/dev/null' -l no-keeper -d 'Held for a shell (no COMMAND): leave no keeper. The lock is then never touched: another machine breaks it once --stale-after has passed, and waits that long after the shell died'
complete -c filelock -n 'not __filelock_command >/dev/null' -s u -d 'Unlock: remove the lock files (those of the calling shell, stale ones and nobody\'s)'
complete -c filelock -n 'not __filelock_command >/dev/null' -l force -d 'With -u: remove the lock files whoever holds them'
complete -c filelock -n 'not __filelock_command >/dev/null' -s c -d 'Check: exit 0 if every lock file is validly held, else 1'
complete -c filelock -n 'not __filelock_command >/dev/null' -l status -d 'Status: describe each lock\'s holder (pid, command, host, held for, alive); exit 0 if any is held, else 9 if any is stale, else 1'
complete -c filelock -n 'not __filelock_command >/dev/null' -l json -d 'With --status: one JSON object per lock, one per line'
complete -c filelock -n 'not __filelock_command >/dev/null' -l verbose -d 'Say when waiting, for which lock and whom, and when a stale lock is broken'
complete -c filelock -n 'not __filelock_command >/dev/null' -s h -l help -d 'Print help (see more with \'--help\')'
complete -c filelock -n 'not __filelock_command >/dev/null' -s V -l version -d 'Print version'

# The command after the lock, completed as fish completes any command line.
function __filelock_command
    set -l tokens (commandline -opc)
    set -l at (contains -i -- -- $tokens); or return 1
    printf '%s\n' $tokens[(math $at + 1)..-1]
    return 0
end
complete -c filelock -n '__filelock_command >/dev/null' -f -a '(__fish_complete_subcommand --commandline (__filelock_command) (commandline -ct))'
