_lockdir() {
    local i cur prev opts cmd
    COMPREPLY=()
    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
        cur="$2"
    else
        cur="${COMP_WORDS[COMP_CWORD]}"
    fi
    prev="$3"
    cmd=""
    opts=""

    for i in "${COMP_WORDS[@]:0:COMP_CWORD}"
    do
        case "${cmd},${i}" in
            ",$1")
                cmd="lockdir"
                ;;
            *)
                ;;
        esac
    done

    case "${cmd}" in
        lockdir)
            opts="-c -t -r -i -q -E -l -u -h -V --status --json --list --stale --clean --check --trap --pid --shared --grace --timeout --stale-after --verbose --conflict-exit-code --on-lost --fence --no-keeper --slots --force --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --pid)
                    COMPREPLY=("${cur}")
                    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
                        compopt -o nospace
                    fi
                    return 0
                    ;;
                --grace)
                    COMPREPLY=("${cur}")
                    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
                        compopt -o nospace
                    fi
                    return 0
                    ;;
                -r)
                    COMPREPLY=("${cur}")
                    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
                        compopt -o nospace
                    fi
                    return 0
                    ;;
                -i)
                    COMPREPLY=("${cur}")
                    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
                        compopt -o nospace
                    fi
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=("${cur}")
                    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
                        compopt -o nospace
                    fi
                    return 0
                    ;;
                --stale-after)
                    COMPREPLY=("${cur}")
                    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
                        compopt -o nospace
                    fi
                    return 0
                    ;;
                --conflict-exit-code)
                    COMPREPLY=("${cur}")
                    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
                        compopt -o nospace
                    fi
                    return 0
                    ;;
                -E)
                    COMPREPLY=("${cur}")
                    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
                        compopt -o nospace
                    fi
                    return 0
                    ;;
                --on-lost)
                    COMPREPLY=($(compgen -W "warn term kill" -- "${cur}"))
                    return 0
                    ;;
                --slots)
                    COMPREPLY=("${cur}")
                    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
                        compopt -o nospace
                    fi
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
    esac
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _lockdir -o nosort -o bashdefault -o default lockdir
else
    complete -F _lockdir -o bashdefault -o default lockdir
fi

# The command after the lock: completed as bash-completion completes any
# command line (`_command_offset`), else command names, then file names.
_lockdir_command() {
    # The first word that is no option (nor an option's value) is the
    # lock; the command follows it (or a `--` after it).
    local i=1 lock=
    while [ "$i" -lt "$COMP_CWORD" ]; do
        case " --pid --grace -r -i --timeout --stale-after -E --conflict-exit-code --on-lost --slots " in
            *" ${COMP_WORDS[i]} "*) i=$((i + 2)); continue ;;
        esac
        case ${COMP_WORDS[i]} in
            --) i=$((i + 1)); lock=$i; break ;;
            -?*) i=$((i + 1)) ;;
            *) lock=$i; break ;;
        esac
    done
    [ -n "$lock" ] || return 1
    i=$((lock + 1))
    [ "${COMP_WORDS[i]}" = "--" ] && [ "$i" -lt "$COMP_CWORD" ] && i=$((i + 1))
    [ "$i" -le "$COMP_CWORD" ] || return 1
    if declare -F _command_offset >/dev/null; then
        _command_offset "$i"
    elif [ "$i" -eq "$COMP_CWORD" ]; then
        COMPREPLY=($(compgen -c -- "${COMP_WORDS[COMP_CWORD]}"))
    else
        COMPREPLY=($(compgen -f -- "${COMP_WORDS[COMP_CWORD]}"))
    fi
}

_lockdir_lockutils() {
    _lockdir_command "$@" || _lockdir "$@"
}
complete -F _lockdir_lockutils -o bashdefault -o default lockdir
