#!/bin/sh
# install.sh install|install-compat|uninstall: the Makefile's install
# targets. Reads DESTDIR, PREFIX and BUILD from the environment (the
# Makefile exports them).
#
# Rules (SPEC section 10): never over a file that is not ours, above all
# one a package owns; remove only what these targets put there.
set -eu

action=$1
prefix=${PREFIX:-/usr/local}
destdir=${DESTDIR:-}
build=${BUILD:-}
programs="dotlock lockdir filelock"
# dotlock invoked as dotlockfile or as one of lockfile-progs' names behaves
# as that tool; filelock invoked as lockfile as procmail's lockfile.
progs_names="lockfile-create lockfile-remove lockfile-touch lockfile-check mail-lock mail-unlock mail-touchlock"

bindir=$destdir$prefix/bin
mandir=$destdir$prefix/share/man/man1
bashdir=$destdir$prefix/share/bash-completion/completions
zshdir=$destdir$prefix/share/zsh/site-functions
fishdir=$destdir$prefix/share/fish/vendor_completions.d

say() { echo "make $action: $*" >&2; }

# The package that owns the installed path $1, if dpkg knows one. Only for
# the live system: a DESTDIR is a staging tree that no package owns.
owner() {
    [ -z "$destdir" ] && command -v dpkg-query >/dev/null 2>&1 || return 1
    dpkg-query -S "$1" 2>/dev/null | grep -v '^diversion by ' |
        sed -n "s|^\([^:]*\): $1\$|\1|p" | grep . || return 1
}

# Is the regular file $1 the completion file of ours?
is_ours() { [ -f "$1" ] && [ ! -L "$1" ] && grep -q "as installed by lockutils" "$1"; }

# Is $1 a symbolic link to $2 (one of ours)?
links_to() { [ -L "$1" ] && [ "$(readlink "$1")" = "$2" ]; }

do_install() {
    for p in $programs; do
        if [ ! -x "$build/$p" ]; then
            say "$build/$p is missing."
            say "Run 'make' first; if cargo put the programs elsewhere (CARGO_TARGET_DIR),"
            say "name that directory: make install BUILD=\$CARGO_TARGET_DIR/<host triple>/release"
            exit 1
        fi
    done
    install -d "$bindir" "$mandir" "$bashdir" "$zshdir" "$fishdir"
    for p in $programs; do
        install -m 755 "$build/$p" "$bindir/$p"
        install -m 644 "man/$p.1" "$mandir/$p.1"
        install -m 644 "completions/$p.bash" "$bashdir/$p"
        install -m 644 "completions/_$p" "$zshdir/_$p"
        install -m 644 "completions/$p.fish" "$fishdir/$p.fish"
        echo "installed $p"
    done
    # dotlock and filelock lock mailboxes in a spool that only the group
    # mail may write when they are setgid mail (as dotlockfile is).
    if [ "$(id -u)" = 0 ] && grep -q '^mail:' /etc/group 2>/dev/null; then
        for p in dotlock filelock; do
            chgrp mail "$bindir/$p"
            chmod 2755 "$bindir/$p"
        done
        echo "dotlock and filelock: setgid mail, for mailbox locks"
    else
        echo "dotlock and filelock are not setgid mail; for mailbox locks in the mail spool, as root:"
        echo "  chgrp mail $bindir/dotlock $bindir/filelock && chmod 2755 $bindir/dotlock $bindir/filelock"
    fi
}

# name:target pairs of the compat links, and the bash completion's links.
compat_links() {
    echo "dotlockfile:dotlock lockfile:filelock"
    for n in $progs_names; do echo "$n:dotlock"; done
}

do_install_compat() {
    refused=
    for pair in $(compat_links); do
        name=${pair%%:*} target=${pair#*:}
        for path in "$bindir/$name" "$bashdir/$name"; do
            [ "$path" = "$bashdir/$name" ] && target=lockfile-progs
            case $path in "$bashdir/dotlockfile" | "$bashdir/lockfile") continue ;; esac
            if pkg=$(owner "$prefix${path#"$destdir$prefix"}"); then
                say "$path: owned by package $pkg; left alone."
                say "On Debian, install the package lockutils-compat instead (make deb): it diverts $pkg's file and gives it back when removed."
                refused=1
            elif { [ -e "$path" ] || [ -L "$path" ]; } && ! links_to "$path" "$target"; then
                say "$path: exists and is not ours; left alone"
                refused=1
            fi
        done
    done
    completion=$bashdir/lockfile-progs
    if pkg=$(owner "$prefix${completion#"$destdir$prefix"}"); then
        say "$completion: owned by package $pkg; left alone"
        refused=1
    elif [ -e "$completion" ] && ! is_ours "$completion"; then
        say "$completion: exists and is not ours; left alone"
        refused=1
    fi
    if [ -n "$refused" ]; then
        say "nothing changed"
        exit 1
    fi
    install -d "$bindir" "$bashdir"
    install -m 644 completions/lockfile-progs.bash "$bashdir/lockfile-progs"
    for pair in $(compat_links); do
        name=${pair%%:*} target=${pair#*:}
        ln -sfn "$target" "$bindir/$name"
        case $name in dotlockfile | lockfile) ;; *) ln -sfn lockfile-progs "$bashdir/$name" ;; esac
    done
    echo "installed dotlockfile, lockfile and lockfile-progs' names"
}

# Remove $1 unless a package owns it.
remove() {
    [ -e "$1" ] || [ -L "$1" ] || return 0
    if pkg=$(owner "$prefix${1#"$destdir$prefix"}"); then
        say "$1: owned by package $pkg; left alone"
    else
        rm -f "$1"
    fi
}

do_uninstall() {
    for p in $programs; do
        for f in "$bindir/$p" "$mandir/$p.1" "$bashdir/$p" "$zshdir/_$p" "$fishdir/$p.fish"; do
            remove "$f"
        done
    done
    for pair in $(compat_links); do
        name=${pair%%:*} target=${pair#*:}
        if links_to "$bindir/$name" "$target"; then remove "$bindir/$name"; fi
        if links_to "$bashdir/$name" lockfile-progs; then remove "$bashdir/$name"; fi
    done
    if is_ours "$bashdir/lockfile-progs"; then remove "$bashdir/lockfile-progs"; fi
}

case $action in
install) do_install ;;
install-compat) do_install_compat ;;
uninstall) do_uninstall ;;
*)
    echo "usage: install.sh install|install-compat|uninstall" >&2
    exit 1
    ;;
esac
