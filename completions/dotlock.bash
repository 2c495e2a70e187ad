_dotlock() {
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
                cmd="dotlock"
                ;;
            *)
                ;;
        esac
    done

    case "${cmd}" in
        dotlock)
            opts="-l -u -c -t -p -m -P -r -i -q -E -h -V --force --status --json --list --stale --clean --check --shared --timeout --stale-after --verbose --conflict-exit-code --on-lost --fence --no-keeper --slots --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
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
    complete -F _dotlock -o nosort -o bashdefault -o default dotlock
else
    complete -F _dotlock -o bashdefault -o default dotlock
fi

# The command after the lock: completed as bash-completion completes any
# command line (`_command_offset`), else command names, then file names.
_dotlock_command() {
    # The first word that is no option (nor an option's value) is the
    # lock; the command follows it (or a `--` after it).
    local i=1 lock=
    while [ "$i" -lt "$COMP_CWORD" ]; do
        case " -r -i --timeout --stale-after -E --conflict-exit-code --on-lost --slots " in
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

_dotlock_lockutils() {
    _dotlock_command "$@" || _dotlock "$@"
}
complete -F _dotlock_lockutils -o bashdefault -o default dotlock
