complete -c lockdir -n 'not __lockdir_command >/dev/null' -l pid -d 'The holder\'s pid [default: the calling shell\'s]; with -u, whose lock to release' -r -f
complete -c lockdir -n 'not __lockdir_command >/dev/null' -l grace -d 'A lock directory without an owner record is stale after DURATION [default: 10]' -r -f
complete -c lockdir -n 'not __lockdir_command >/dev/null' -s r -d 'Retries after the first attempt [default: 5, that is 6 attempts over 75 s, then exit 4]; -1 for forever, 0 for one attempt' -r -f
complete -c lockdir -n 'not __lockdir_command >/dev/null' -s i -d 'Wait SECONDS between attempts instead of 5, 10, ... 60 s (0: no wait)' -r -f
complete -c lockdir -n 'not __lockdir_command >/dev/null' -l timeout -d 'Give up after DURATION of waiting (seconds; 0.5, 200ms, 2m allowed)' -r -f
complete -c lockdir -n 'not __lockdir_command >/dev/null' -l stale-after -d 'A lock whose holder cannot be proven alive or dead is stale after DURATION [default: 300]; holders touch their lock every third of it (at most every 30 s)' -r -f
complete -c lockdir -n 'not __lockdir_command >/dev/null' -s E -l conflict-exit-code -d 'With a COMMAND: exit N when the lock cannot be had (retries or --timeout spent) [default: 4]; -E 0 makes "still running from last time" a success for cron' -r -f
complete -c lockdir -n 'not __lockdir_command >/dev/null' -l on-lost -d 'When the lock is found lost at a keep-alive touch: with a COMMAND, warn (the default), or also send the command SIGTERM (term) or SIGKILL (kill), which then ends by that signal; held for a shell, its keeper sends the shell that signal (term, kill) and stops' -r -f -a "warn\t'Say so on stderr, at once'
term\t'Say so, and send the command SIGTERM'
kill\t'Say so, and send the command SIGKILL'"
complete -c lockdir -n 'not __lockdir_command >/dev/null' -l slots -d 'Counting semaphore: take any free one of N locks, LOCK.1 ... LOCK.N; the slot is printed, or given to the command as $DOTLOCK_SLOT' -r -f
complete -c lockdir -n 'not __lockdir_command >/dev/null' -s c -d 'Check: exit 0 if a valid lock exists, else 1'
complete -c lockdir -n 'not __lockdir_command >/dev/null' -l status -d 'Status: describe the lock\'s holder (pid, command, host, held for, alive); exit 0 if held, 1 if free, 9 if stale'
complete -c lockdir -n 'not __lockdir_command >/dev/null' -l json -d 'With --status: one JSON object per lock or slot, one per line (with --list, --check: per lock, per finding)'
complete -c lockdir -n 'not __lockdir_command >/dev/null' -l list -d 'List every lock in the directory named instead of a lock: its kind (dot-lock, lock directory, slot, share, want, gate, break lock, debris), state and holder, each lock\'s members under it'
complete -c lockdir -n 'not __lockdir_command >/dev/null' -l stale -d 'With --list: only stale locks and debris'
complete -c lockdir -n 'not __lockdir_command >/dev/null' -l clean -d 'With --list: remove the stale locks and debris that are ours to remove (each only if still the one judged), saying each'
complete -c lockdir -n 'not __lockdir_command >/dev/null' -l check -d 'Diagnose the directory named instead of a lock: is it safe to lock in (filesystem, link(2), clock, identity, permissions, space)? Exit 10 if anything is unsafe'
complete -c lockdir -n 'not __lockdir_command >/dev/null' -s t -d 'Touch: refresh the lock\'s timestamp (with --shared: the caller\'s share)'
complete -c lockdir -n 'not __lockdir_command >/dev/null' -l trap -d 'Print shell code for `eval` that takes the lock and sets EXIT, HUP, INT and TERM traps releasing it'
complete -c lockdir -n 'not __lockdir_command >/dev/null' -l shared -d 'Take a reader\'s share: any number of readers at once, or one writer (a plain lockdir of the same name), never both; with -u: the caller\'s share'
complete -c lockdir -n 'not __lockdir_command >/dev/null' -l verbose -d 'Say when waiting, whom for, and when a stale lock is broken'
complete -c lockdir -n 'not __lockdir_command >/dev/null' -s q -d 'Quiet: no "busy" line when the lock cannot be had (other failures still say theirs)'
complete -c lockdir -n 'not __lockdir_command >/dev/null' -l fence -d 'Fencing token: once the lock is taken, claim a number larger than every earlier holder\'s (in LOCK.fence beside it), record it, and print it (with --slots: "SLOT TOKEN"), or give it to the COMMAND as $DOTLOCK_TOKEN'
complete -c lockdir -n 'not __lockdir_command >/dev/null' -l no-keeper -d 'Held for a shell (no COMMAND): leave no keeper. The lock is then never touched: another machine breaks it once --stale-after has passed, and waits that long after the shell died'
complete -c lockdir -n 'not __lockdir_command >/dev/null' -s l -d 'Lock (the default action), as dotlock\'s -l'
complete -c lockdir -n 'not __lockdir_command >/dev/null' -s u -d 'Release the lock: only if it is ours (or its owner is proven dead)'
complete -c lockdir -n 'not __lockdir_command >/dev/null' -l force -d 'With -u: release the lock whoever holds it'
complete -c lockdir -n 'not __lockdir_command >/dev/null' -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lockdir -n 'not __lockdir_command >/dev/null' -s V -l version -d 'Print version'

# The command after the lock, completed as fish completes any command line.
function __lockdir_command
    # The first token that is no option (nor an option's value) is the lock.
    set -l tokens (commandline -opc)
    set -e tokens[1]
    while set -q tokens[1]
        if contains -- $tokens[1] --pid --grace -r -i --timeout --stale-after -E --conflict-exit-code --on-lost --slots
            set -e tokens[1..2]
        else if test "$tokens[1]" = --
            set -e tokens[1]
            break
        else if string match -q -- '-?*' $tokens[1]
            set -e tokens[1]
        else
            break
        end
    end
    set -q tokens[1]; or return 1
    set -e tokens[1]
    test "$tokens[1]" = --; and set -e tokens[1]
    printf '%s\n' $tokens
    return 0
end
complete -c lockdir -n '__lockdir_command >/dev/null' -f -a '(__fish_complete_subcommand --commandline (__lockdir_command) (commandline -ct))'
