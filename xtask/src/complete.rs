//! Shell completions: clap_complete's, made to fit commands that take a
//! lock and then a command. Number and duration options complete nothing
//! (no file names after `-r`), hidden options are never offered, and after
//! the lock file (dotlock, lockdir) or after `--` (filelock) the command
//! and its arguments are completed as the shell completes any command line.

use clap::{Arg, ArgAction, Command, ValueHint};
use clap_complete::Shell;

/// How a command's operands end in a command to run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Operands {
    /// `LOCK [COMMAND [ARG]...]`: the command follows the one lock operand.
    LockThenCommand,
    /// `LOCK... [-- COMMAND [ARG]...]`: the command follows `--`.
    AfterDashes,
}

/// The completion script of `cmd` for `shell`.
pub fn completion(cmd: Command, name: &str, operands: Operands, shell: Shell) -> Vec<u8> {
    let mut cmd = cmd.mut_args(|a| {
        if takes_value(&a) && !a.is_positional() && a.get_possible_values().is_empty() {
            a.value_hint(ValueHint::Other)
        } else {
            a
        }
    });
    cmd.build();
    let with_value: Vec<String> = cmd
        .get_arguments()
        .filter(|a| !a.is_positional() && takes_value(a))
        .flat_map(spellings)
        .collect();
    let hidden: Vec<String> = cmd
        .get_arguments()
        .filter(|a| a.is_hide_set() && !a.is_positional())
        .flat_map(spellings)
        .collect();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut buf);
    let generated = String::from_utf8(buf).expect("completions are UTF-8");
    let script = match shell {
        Shell::Bash => bash(&generated, name, operands, &with_value, &hidden),
        Shell::Zsh => zsh(&generated, name, operands, &hidden),
        Shell::Fish => fish(&generated, name, operands, &with_value, &hidden),
        _ => generated,
    };
    script.into_bytes()
}

fn takes_value(a: &Arg) -> bool {
    matches!(a.get_action(), ArgAction::Set | ArgAction::Append)
}

/// `-r` and `--retries`, as typed.
fn spellings(a: &Arg) -> Vec<String> {
    let short = a.get_short().map(|s| format!("-{s}"));
    let long = a.get_long().map(|l| format!("--{l}"));
    short.into_iter().chain(long).collect()
}

fn bash(
    generated: &str,
    name: &str,
    operands: Operands,
    with_value: &[String],
    hidden: &[String],
) -> String {
    // The hidden options out of every word list.
    let mut out: String = generated
        .lines()
        .map(|line| {
            let mut line = line.to_string();
            for h in hidden {
                line = line
                    .replace(&format!(" {h} "), " ")
                    .replace(&format!("\"{h} "), "\"");
            }
            line + "\n"
        })
        .collect();
    let f = name.replace('-', "_");
    let find_command = match operands {
        Operands::LockThenCommand => format!(
            r#"    # The first word that is no option (nor an option's value) is the
    # lock; the command follows it (or a `--` after it).
    local i=1 lock=
    while [ "$i" -lt "$COMP_CWORD" ]; do
        case " {values} " in
            *" ${{COMP_WORDS[i]}} "*) i=$((i + 2)); continue ;;
        esac
        case ${{COMP_WORDS[i]}} in
            --) i=$((i + 1)); lock=$i; break ;;
            -?*) i=$((i + 1)) ;;
            *) lock=$i; break ;;
        esac
    done
    [ -n "$lock" ] || return 1
    i=$((lock + 1))
    [ "${{COMP_WORDS[i]}}" = "--" ] && [ "$i" -lt "$COMP_CWORD" ] && i=$((i + 1))
    [ "$i" -le "$COMP_CWORD" ] || return 1"#,
            values = with_value.join(" ")
        ),
        Operands::AfterDashes => r#"    # The command follows the first `--`.
    local i=1
    while [ "$i" -lt "$COMP_CWORD" ] && [ "${COMP_WORDS[i]}" != "--" ]; do
        i=$((i + 1))
    done
    [ "$i" -lt "$COMP_CWORD" ] || return 1
    i=$((i + 1))"#
            .to_string(),
    };
    out.push_str(&format!(
        r#"
# The command after the lock: completed as bash-completion completes any
# command line (`_command_offset`), else command names, then file names.
_{f}_command() {{
{find_command}
    if declare -F _command_offset >/dev/null; then
        _command_offset "$i"
    elif [ "$i" -eq "$COMP_CWORD" ]; then
        COMPREPLY=($(compgen -c -- "${{COMP_WORDS[COMP_CWORD]}}"))
    else
        COMPREPLY=($(compgen -f -- "${{COMP_WORDS[COMP_CWORD]}}"))
    fi
}}

_{f}_lockutils() {{
    _{f}_command "$@" || _{f} "$@"
}}
complete -F _{f}_lockutils -o bashdefault -o default {name}
"#
    ));
    out
}

fn zsh(generated: &str, name: &str, operands: Operands, hidden: &[String]) -> String {
    let entry = format!("_{name}() {{");
    let after_dashes = AFTER_DASHES.replace("_NAME() {", &entry);
    generated
        .lines()
        .filter(|line| !hidden.iter().any(|h| line.starts_with(&format!("'{h}["))))
        .map(|line| {
            let operand = match operands {
                Operands::LockThenCommand if line.starts_with("'*::args -- The lock directory") => {
                    Some("':lock directory:_files -/' \\\n'*:::command:_normal' \\")
                }
                Operands::LockThenCommand if line.starts_with("'*::args -- ") => {
                    Some("':lock file:_files' \\\n'*:::command:_normal' \\")
                }
                Operands::AfterDashes if line.starts_with("'*::files -- ") => {
                    Some("'*:lock file:_files' \\")
                }
                // After `--`, the command line of a command of its own.
                Operands::AfterDashes if line == entry => Some(after_dashes.as_str()),
                _ => None,
            };
            format!("{}\n", operand.unwrap_or(line))
        })
        .collect()
}

/// The start of a zsh completion function whose command follows `--`.
const AFTER_DASHES: &str = r#"_NAME() {
    local dashes=${words[(i)--]}
    if (( dashes < CURRENT )); then
        shift $dashes words
        (( CURRENT -= dashes ))
        _normal
        return
    fi"#;

fn fish(
    generated: &str,
    name: &str,
    operands: Operands,
    with_value: &[String],
    hidden: &[String],
) -> String {
    let f = name.replace('-', "_");
    let mut out: String = generated
        .lines()
        .filter(|line| {
            !hidden.iter().any(|h| {
                let flag = match h.strip_prefix("--") {
                    Some(long) => format!(" -l {long} "),
                    None => format!(" -s {} ", &h[1..]),
                };
                line.contains(&flag)
            })
        })
        .map(|line| {
            // Options are offered only where the command has not begun.
            let line = line.replacen(
                &format!("complete -c {name} "),
                &format!("complete -c {name} -n 'not __{f}_command >/dev/null' "),
                1,
            );
            line + "\n"
        })
        .collect();
    let body = match operands {
        Operands::LockThenCommand => format!(
            r#"    # The first token that is no option (nor an option's value) is the lock.
    set -l tokens (commandline -opc)
    set -e tokens[1]
    while set -q tokens[1]
        if contains -- $tokens[1] {values}
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
    printf '%s\n' $tokens"#,
            values = with_value.join(" ")
        ),
        Operands::AfterDashes => r#"    set -l tokens (commandline -opc)
    set -l at (contains -i -- -- $tokens); or return 1
    printf '%s\n' $tokens[(math $at + 1)..-1]"#
            .to_string(),
    };
    out.push_str(&format!(
        r#"
# The command after the lock, completed as fish completes any command line.
function __{f}_command
{body}
    return 0
end
complete -c {name} -n '__{f}_command >/dev/null' -f -a '(__fish_complete_subcommand --commandline (__{f}_command) (commandline -ct))'
"#
    ));
    out
}
