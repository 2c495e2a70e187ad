# Build, then install the programs, man pages and shell completions.
#
#   make && sudo make install               # into /usr/local
#   make install DESTDIR=/tmp/pkg PREFIX=/usr
#   make install-compat                     # the dotlockfile and lockfile symlinks
#   make uninstall
#   make deb                                # Debian: lockutils and lockutils-compat
#
# `make install` installs what `make` built (BUILD: by default
# <target dir>/<host triple>/release, where .cargo/config.toml has cargo put
# it, the target dir being $CARGO_TARGET_DIR or target); it does not build,
# so it can run as root without a Rust toolchain. Run as root, it makes
# dotlock and filelock setgid mail, for mailbox locks.
# packaging/install.sh holds the rules: never over a file that is not ours
# (a package's above all), and uninstall removes only what install put.

PREFIX      ?= /usr/local
DESTDIR     ?=
TARGET_DIR  := $(or $(CARGO_TARGET_DIR),target)
BUILD       ?= $(firstword $(patsubst %/dotlock,%,$(wildcard $(TARGET_DIR)/*/release/dotlock)) $(TARGET_DIR)/release)
DEBDIR      ?= $(TARGET_DIR)/debian
export PREFIX DESTDIR BUILD

.PHONY: all install install-compat uninstall deb

all:
	cargo build --release --bins

install install-compat uninstall:
	@sh packaging/install.sh $@

# The Debian packages, with cargo-deb (cargo install cargo-deb); see
# Cargo.toml's [package.metadata.deb] and packaging/.
deb: all
	@command -v cargo-deb >/dev/null || { echo "make deb: needs cargo-deb: cargo install --locked cargo-deb" >&2; exit 1; }
	@host=$$(rustc -vV | sed -n 's/^host: //p'); \
	main=$$(cargo deb --no-build --target "$$host" --output "$(DEBDIR)/") && \
	compat=$$(cargo deb --no-build --target "$$host" --variant compat --output "$(DEBDIR)/") && \
	sh packaging/finish-deb "$$main" "$$compat" && \
	echo "$$main" && echo "$$compat"
