complete -c filelock -s r -d 'Retries for each lock after its first attempt [default: 10]; -1 for forever' -r
complete -c filelock -s s -d 'Seconds between attempts [default: 1]' -r
complete -c filelock -s l -d 'Lock (the default)'
complete -c filelock -s u -d 'Unlock: remove the lock files (those of the calling shell, stale ones and nobody\'s)'
complete -c filelock -l force -d 'With -u: remove the lock files whoever holds them'
complete -c filelock -l verbose -d 'Say when waiting, whom for, and when a stale lock is broken'
complete -c filelock -s h -l help -d 'Print help (see more with \'--help\')'
complete -c filelock -s V -l version -d 'Print version'
