complete -c dotlock -s r -d 'Retries after the first attempt [default: 5]; -1 for forever' -r
complete -c dotlock -s i -d 'Wait SECONDS between attempts instead of 5, 10, ... 60 s (0: no wait)' -r
complete -c dotlock -l timeout -d 'Give up after DURATION of waiting (seconds; 0.5, 200ms, 2m allowed)' -r
complete -c dotlock -l stale-after -d 'A lock whose holder cannot be proven alive or dead is stale after DURATION [default: 300]; holders touch their lock every third of it (at most every 30 s)' -r
complete -c dotlock -l on-lost -d 'With a COMMAND: when the lock is found lost at a keep-alive touch, warn (the default), or also send the command SIGTERM (term) or SIGKILL (kill); the command then ends by that signal' -r -f -a "warn\t'Say so on stderr, at once'
term\t'Say so, and send the command SIGTERM'
kill\t'Say so, and send the command SIGKILL'"
complete -c dotlock -l slots -d 'Counting semaphore: take any free one of N locks, LOCK.1 ... LOCK.N; the slot is printed, or given to the command as $DOTLOCK_SLOT' -r
complete -c dotlock -s l -d 'Lock (the default action)'
complete -c dotlock -s u -d 'Unlock: remove the lock file if it is the caller\'s (or stale, or nobody\'s); a missing lock is success'
complete -c dotlock -l force -d 'With -u: remove the lock whoever holds it'
complete -c dotlock -s t -d 'Touch: refresh the lock\'s timestamp'
complete -c dotlock -s c -d 'Check: exit 0 if a valid lock exists, else 1'
complete -c dotlock -l status -d 'Status: describe the lock\'s holder (pid, command, host, held for, alive); exit 0 if held, 1 if free, 9 if stale'
complete -c dotlock -l json -d 'With --status: one JSON object per lock or slot, one per line'
complete -c dotlock -s p -d 'Record a pid (the parent\'s; dotlock\'s own with a COMMAND) and trust a live pid when checking'
complete -c dotlock -s m -d 'Lock the user\'s mailbox: $MAIL.lock, else /var/mail/USER.lock'
complete -c dotlock -s P -d 'With a COMMAND, exit with its status (always so in dotlock; only with -P as dotlockfile)'
complete -c dotlock -s N -d 'Accepted and ignored (liblockfile passes it)'
complete -c dotlock -l verbose -d 'Say when waiting, whom for, and when a stale lock is broken'
complete -c dotlock -s q -d 'Quiet: no error messages'
complete -c dotlock -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dotlock -s V -l version -d 'Print version'
