# Shared helpers for scripts/*: sourced, not run.

# Prints a progress line on stderr, with the time since the outermost script
# started (scripts/test's steps and the scripts it runs share one clock, so a
# CI log says where the time went).
: "${SANDKASTEN_T0:=$(date +%s)}"
export SANDKASTEN_T0
say() {
    local t=$(($(date +%s) - SANDKASTEN_T0))
    printf '==> [%dm%02ds] %s\n' $((t / 60)) $((t % 60)) "$*" >&2
}

# Prints an error and exits non-zero.
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# need_packages CMD:PACKAGE...: installs the Debian packages whose commands are
# missing (as root, after one apt-get update), or says exactly what to install.
need_packages() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        die "missing packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})"
    fi
    say "installing ${missing[*]}"
    if [ -z "${SANDKASTEN_APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
        export SANDKASTEN_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
        || die "apt-get install ${missing[*]} failed"
}

# need_rust: cargo with rustfmt and clippy, or a clear message.
need_rust() {
    command -v cargo >/dev/null 2>&1 \
        || die "cargo not found: install a current stable Rust (https://rustup.rs; tested with 1.95)"
}

# need_vm_packages: what sandkasten-vm needs on the host: qemu (with qboot
# from qemu-system-data), mmdebstrap for the guest image, mkfs.ext4 for the
# per-run disks, zstd/xz to unpack the guest kernel's modules, Debian's
# archive keyring, and cargo-deb
# for the packages every guest installs.
need_vm_packages() {
    need_packages qemu-system-x86_64:qemu-system-x86 mmdebstrap:mmdebstrap mkfs.ext4:e2fsprogs \
        zstd:zstd xz:xz-utils
    [ -f /usr/share/qemu/qboot.rom ] || need_packages __qboot__:qemu-system-data
    # Debian's archive key: the image build and the --systemd guest test
    # fetch from Debian's archive (an Ubuntu host lacks it).
    [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need_packages __keyring__:debian-archive-keyring
    need_cargo_deb
}

# need_test_packages: what the host tests need: systemd-socket-activate and
# systemd-analyze (the servers' and units' tests), curl and strace, iproute2
# and util-linux (unshare, setpriv, prlimit, findmnt) and a private D-Bus for
# the escape probe's restricted worlds, and nftables (the egress guard's
# rules, loaded in a test's own network namespace; systemd-analyze verify).
need_test_packages() {
    need_packages systemd-socket-activate:systemd systemd-analyze:systemd curl:curl strace:strace \
        ip:iproute2 unshare:util-linux setpriv:util-linux prlimit:util-linux findmnt:util-linux \
        dbus-daemon:dbus-daemon nft:nftables
}

# need_cargo_tool NAME VERSION WHY: the cargo subcommand cargo-NAME, installed
# with `cargo install --locked` (the versions it was released with; about a
# minute) if missing. VERSION is the release our scripts are tested with.
need_cargo_tool() {
    need_rust
    cargo "$1" --version >/dev/null 2>&1 && return 0
    say "installing cargo-$1 $2 ($3; cargo install, about a minute)"
    cargo install --quiet --locked --version "$2" "cargo-$1" || die "cargo install cargo-$1 failed"
}

# need_cargo_deb: cargo-deb, which builds the Debian packages (scripts/package,
# and the VM harness for every guest).
need_cargo_deb() { need_cargo_tool deb 3.8.0 "for the Debian packages"; }

# need_cargo_fuzz: cargo-fuzz, which builds and runs the libFuzzer targets
# (scripts/fuzz). It runs on stable Rust with RUSTC_BOOTSTRAP=1 (scripts/fuzz
# sets it for its builds alone).
need_cargo_fuzz() { need_cargo_tool fuzz 0.13.2 "for scripts/fuzz"; }
