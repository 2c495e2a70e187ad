complete -c lockdir -l pid -d 'The holder\'s pid [default: the calling shell\'s]; with -u, whose lock to release' -r
complete -c lockdir -l grace -d 'A lock directory without an owner record is stale after DURATION [default: 10]' -r
complete -c lockdir -s r -d 'Retries after the first attempt [default: 5]; -1 for forever' -r
complete -c lockdir -s i -d 'Wait SECONDS between attempts instead of 5, 10, ... 60 s (0: no wait)' -r
complete -c lockdir -l timeout -d 'Give up after DURATION of waiting (seconds; 0.5, 200ms, 2m allowed)' -r
complete -c lockdir -l stale-after -d 'A lock whose holder cannot be proven alive or dead is stale after DURATION [default: 300]; holders touch their lock every third of it (at most every 30 s)' -r
complete -c lockdir -l on-lost -d 'With a COMMAND: when the lock is found lost at a keep-alive touch, warn (the default), or also send the command SIGTERM (term) or SIGKILL (kill); the command then ends by that signal' -r -f -a "warn\t'Say so on stderr, at once'
term\t'Say so, and send the command SIGTERM'
kill\t'Say so, and send the command SIGKILL'"
complete -c lockdir -l slots -d 'Counting semaphore: take any free one of N locks, LOCK.1 ... LOCK.N; the slot is printed, or given to the command as $DOTLOCK_SLOT' -r
complete -c lockdir -s l -d 'Lock (the default action), as dotlock\'s -l'
complete -c lockdir -s u -d 'Release the lock: only if it is ours (or its owner is proven dead)'
complete -c lockdir -l force -d 'With -u: release the lock whoever holds it'
complete -c lockdir -s c -d 'Check: exit 0 if a valid lock exists, else 1'
complete -c lockdir -l status -d 'Status: describe the lock\'s holder (pid, command, host, held for, alive); exit 0 if held, 1 if free, 9 if stale'
complete -c lockdir -l json -d 'With --status: one JSON object per lock or slot, one per line'
complete -c lockdir -l trap -d 'Print shell code for `eval` that takes the lock and sets EXIT, HUP, INT and TERM traps releasing it'
complete -c lockdir -l verbose -d 'Say when waiting, whom for, and when a stale lock is broken'
complete -c lockdir -s q -d 'Quiet: no error messages'
complete -c lockdir -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lockdir -s V -l version -d 'Print version'
