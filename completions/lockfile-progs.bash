# bash completion for lockfile-progs' names, as installed by lockutils'
# `make install-compat` and the package lockutils-compat (links to dotlock).
_lockutils_lockfile_progs() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} opts
    case ${COMP_WORDS[0]##*/} in
        lockfile-create) opts="-q --quiet -v --verbose -p --use-pid -r --retry -l --lock-name" ;;
        lockfile-remove) opts="-q --quiet -v --verbose -l --lock-name" ;;
        lockfile-touch) opts="-q --quiet -v --verbose -o --oneshot -l --lock-name" ;;
        lockfile-check) opts="-q --quiet -v --verbose -p --use-pid -l --lock-name" ;;
        mail-lock) opts="-q --quiet -v --verbose -p --use-pid -r --retry" ;;
        mail-touchlock) opts="-q --quiet -v --verbose -o --oneshot" ;;
        *) opts="-q --quiet -v --verbose" ;;
    esac
    case $prev in
        -r|--retry) COMPREPLY=(); return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        case ${COMP_WORDS[0]##*/} in
            mail-*) COMPREPLY=() ;;
            *) COMPREPLY=($(compgen -f -- "$cur")) ;;
        esac
    fi
}
complete -F _lockutils_lockfile_progs lockfile-create lockfile-remove lockfile-touch lockfile-check mail-lock mail-unlock mail-touchlock
