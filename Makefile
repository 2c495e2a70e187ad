# Build, then install the programs, man pages and shell completions.
#
#   make && sudo make install               # into /usr/local
#   make install DESTDIR=/tmp/pkg PREFIX=/usr
#   make install-compat                     # the dotlockfile and lockfile symlinks
#   make uninstall
#
# `make install` installs what `make` built (BUILD, by default
# target/<host triple>/release, where .cargo/config.toml has cargo put it);
# it does not build, so it can run as root without a Rust toolchain.

PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    ?= $(firstword $(patsubst %/dotlock,%,$(wildcard target/*/release/dotlock)) target/release)
PROGRAMS  = dotlock lockdir filelock

BINDIR   = $(DESTDIR)$(PREFIX)/bin
MANDIR   = $(DESTDIR)$(PREFIX)/share/man/man1
BASHDIR  = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHDIR   = $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHDIR  = $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d

.PHONY: all install install-compat uninstall

all:
	cargo build --release --bins

install:
	@for p in $(PROGRAMS); do \
	  test -x "$(BUILD)/$$p" || { echo "make install: $(BUILD)/$$p is missing; run 'make' first" >&2; exit 1; }; \
	done
	install -d "$(BINDIR)" "$(MANDIR)" "$(BASHDIR)" "$(ZSHDIR)" "$(FISHDIR)"
	@for p in $(PROGRAMS); do \
	  install -m 755 "$(BUILD)/$$p" "$(BINDIR)/$$p" && \
	  install -m 644 "man/$$p.1" "$(MANDIR)/$$p.1" && \
	  install -m 644 "completions/$$p.bash" "$(BASHDIR)/$$p" && \
	  install -m 644 "completions/_$$p" "$(ZSHDIR)/_$$p" && \
	  install -m 644 "completions/$$p.fish" "$(FISHDIR)/$$p.fish" || exit 1; \
	  echo "installed $$p"; \
	done

# dotlock invoked as dotlockfile behaves as liblockfile's dotlockfile;
# filelock invoked as lockfile as procmail's lockfile.
# dotlock invoked as one of lockfile-progs' names behaves as that tool.
LOCKFILE_PROGS = lockfile-create lockfile-remove lockfile-touch lockfile-check mail-lock mail-unlock mail-touchlock

install-compat:
	install -d "$(BINDIR)" "$(BASHDIR)"
	ln -sf dotlock "$(BINDIR)/dotlockfile"
	ln -sf filelock "$(BINDIR)/lockfile"
	@for p in $(LOCKFILE_PROGS); do ln -sf dotlock "$(BINDIR)/$$p" || exit 1; done
	install -m 644 completions/lockfile-progs.bash "$(BASHDIR)/lockfile-progs"

uninstall:
	@for p in $(PROGRAMS); do \
	  rm -f "$(BINDIR)/$$p" "$(MANDIR)/$$p.1" "$(BASHDIR)/$$p" "$(ZSHDIR)/_$$p" "$(FISHDIR)/$$p.fish"; \
	done
	@if [ -L "$(BINDIR)/dotlockfile" ] && [ "$$(readlink "$(BINDIR)/dotlockfile")" = dotlock ]; then \
	  rm -f "$(BINDIR)/dotlockfile"; \
	fi
	@if [ -L "$(BINDIR)/lockfile" ] && [ "$$(readlink "$(BINDIR)/lockfile")" = filelock ]; then \
	  rm -f "$(BINDIR)/lockfile"; \
	fi
	@for p in $(LOCKFILE_PROGS); do \
	  if [ -L "$(BINDIR)/$$p" ] && [ "$$(readlink "$(BINDIR)/$$p")" = dotlock ]; then rm -f "$(BINDIR)/$$p"; fi; \
	done
	rm -f "$(BASHDIR)/lockfile-progs"
