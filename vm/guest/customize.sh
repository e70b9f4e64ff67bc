#!/usr/bin/env bash
# Trim the freshly bootstrapped guest root file system for fast, quiet boots.
#
# Usage: customize.sh ROOTFS   (run by `sandkasten-vm image` on the host after
# mmdebstrap finished and vm/guest/overlay was copied in; not as an mmdebstrap
# hook, whose cleanup would empty /etc/machine-id again)
#
# Each mask says what it would cost at boot; the harness target only wants
# basic.target, D-Bus and the runner, so whatever basic.target pulls in that
# no test needs is masked here.
set -euo pipefail

root=$(realpath "${1:?usage: customize.sh ROOTFS}")

mask() {
    local unit
    for unit in "$@"; do
        ln -sfn /dev/null "$root/etc/systemd/system/$unit"
    done
}

# Periodic maintenance: pointless in a guest that lives for seconds.
mask apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
    e2scrub_all.timer fstrim.timer systemd-tmpfiles-clean.timer
rm -f "$root"/etc/systemd/system/timers.target.wants/*
# udev: coldplug of every device costs seconds under TCG; the tiny initrd
# loads virtio_blk and virtio_console, which is all the guest needs.
mask systemd-udevd.service systemd-udev-trigger.service systemd-udev-settle.service \
    systemd-udevd-control.socket systemd-udevd-kernel.socket systemd-hwdb-update.service
# First-boot and persistence helpers: the disk is thrown away after each run.
mask systemd-firstboot.service systemd-machine-id-commit.service systemd-random-seed.service \
    systemd-update-utmp.service systemd-update-utmp-runlevel.service systemd-journal-flush.service \
    systemd-pstore.service ldconfig.service systemd-repart.service \
    systemd-journal-catalog-update.service systemd-update-done.service \
    systemd-pcrphase.service systemd-pcrphase-sysinit.service systemd-pcrphase-initrd.service
rm -f "$root/etc/systemd/system/sysinit.target.wants/systemd-pstore.service"
# Early setup the guest does not need: the users exist (sysusers), the root is
# mounted rw by the kernel and fstab is empty (remount-fs), the tiny initrd or
# the runner loads the only module needed (modules-load, kmod-static-nodes).
mask systemd-sysusers.service systemd-remount-fs.service systemd-modules-load.service \
    kmod-static-nodes.service
# File systems and devices nobody uses in the guest.
mask proc-sys-fs-binfmt_misc.automount systemd-binfmt.service sys-fs-fuse-connections.mount \
    sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
    dev-hugepages.mount systemd-journald-audit.socket e2scrub_reap.service getty@tty1.service

# Generators run on every boot before any unit starts (about 1.4 s for all
# of them under TCG). The guest needs none: no fstab, no crypt or verity
# devices, no SysV scripts; the getty is wanted explicitly by the shell
# target. Only systemd-debug-generator stays, for `systemd.mask=` and
# `systemd.debug_shell` on the kernel command line.
mkdir -p "$root/etc/systemd/system-generators"
for generator in "$root"/usr/lib/systemd/system-generators/*; do
    name=${generator##*/}
    if [[ $name != systemd-debug-generator ]]; then
        ln -sfn /dev/null "$root/etc/systemd/system-generators/$name"
    fi
done

# A fixed machine ID: an empty or missing one makes systemd treat every boot
# as the first and run its first-boot units.
echo 5a6e646b617374656e2d766d2d302e31 >"$root/etc/machine-id"
echo sandkasten-guest >"$root/etc/hostname"

# journald keeps logs in memory (the servers log to it; the disk is discarded).
mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' >"$root/etc/systemd/journald.conf.d/sandkasten.conf"

# The root file system is the only disk; nothing to mount or check.
: >"$root/etc/fstab"
mkdir -p "$root/payload"

# Root logs in without a password on the debug shell's serial console.
passwd --root "$root" --delete root >/dev/null

chmod 0755 "$root/usr/lib/sandkasten/harness-runner"
