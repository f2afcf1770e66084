"""What every local VM image carries besides packages: the files that make a rootfs boot fast and take its identity.

A VM's identity (SSH host keys, the operator's key, its lab address) arrives on a small "seed" disk that is a
plain tar archive (virtio serial `pvseed`); `vm-seed.service` unpacks it over `/` before networkd and
sshd start, on every boot. Hostname and machine-id come from the kernel command line
(`systemd.hostname=`, `systemd.machine_id=`). This needs no cloud-init, no guest tools and no image mounting
on the host: building a seed is writing a tar file.
"""

from __future__ import annotations

__all__ = ["DISABLED_UNITS", "ENABLED_UNITS", "GUEST_FILES", "INITRAMFS_FILES", "MGMT_MAC", "SEED_SERIAL"]

SEED_SERIAL = "pvseed"
MGMT_MAC = "52:54:00:12:34:56"

# The seed disk is found by its virtio serial in sysfs rather than through udev's /dev/disk/by-id links:
# the kernel has probed it before / is mounted, and waiting for udev would put it on every boot's critical path.
_SEED_SCRIPT = f"""\
#!/bin/sh
for dev in /sys/block/vd*; do
    if [ "$(cat "$dev/serial" 2>/dev/null)" = {SEED_SERIAL} ]; then
        exec tar -xpf "/dev/${{dev##*/}}" -C /
    fi
done
echo "no seed disk (virtio serial {SEED_SERIAL})" >&2
exit 1
"""

_SEED_UNIT = """\
[Unit]
Description=Per-VM identity from the provisioner seed disk
DefaultDependencies=no
Before=sysinit.target systemd-networkd.service ssh.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/lib/provisioner/apply-seed

[Install]
WantedBy=sysinit.target
"""

# Growing / to the size's disk is not needed for SSH, so it runs beside the rest of the boot.
_GROWFS_UNIT = """\
[Unit]
Description=Grow the root filesystem to the disk the VM was given

[Service]
Type=oneshot
ExecStart=/sbin/resize2fs /dev/vda

[Install]
WantedBy=multi-user.target
"""

# The management NIC sits behind QEMU's user-mode network, whose addresses never change: a static
# configuration saves the DHCP round trips of every boot.
_MGMT_NETWORK = f"""\
[Match]
MACAddress={MGMT_MAC}

[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
DNS=10.0.2.3
"""

_SSHD = """\
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
"""

# Baked into the last image layer (cheap to change); the root fs is mounted rw by the kernel (no fstab entry,
# so nothing waits for udev to announce /dev/vda).
GUEST_FILES: dict[str, tuple[str, int]] = {
    "usr/local/lib/provisioner/apply-seed": (_SEED_SCRIPT, 0o755),
    "etc/systemd/system/vm-seed.service": (_SEED_UNIT, 0o644),
    "etc/systemd/system/vm-growfs.service": (_GROWFS_UNIT, 0o644),
    "etc/systemd/network/20-mgmt.network": (_MGMT_NETWORK, 0o644),
    "etc/ssh/sshd_config.d/provisioner.conf": (_SSHD, 0o644),
    "etc/fstab": ("# / is mounted rw by the kernel (root=/dev/vda rw)\n", 0o644),
    "etc/hostname": ("localhost\n", 0o644),
    "etc/hosts": ("127.0.0.1 localhost\n", 0o644),
    "etc/resolv.conf": ("nameserver 10.0.2.3\n", 0o644),
    "etc/machine-id": ("", 0o444),
}
# Not named provisioner-*: that prefix belongs to what `provision up` installs (and `down` removes) on a machine.
ENABLED_UNITS: tuple[str, ...] = ("vm-seed.service", "vm-growfs.service", "systemd-networkd.service")

# Part of the rootfs layer: the initramfs is generated there. Only what finds and mounts / goes in.
INITRAMFS_FILES: dict[str, tuple[str, int]] = {
    "etc/initramfs-tools/conf.d/provisioner": ("MODULES=list\n", 0o644),
    "etc/initramfs-tools/modules": ("virtio_pci\nvirtio_blk\next4\n", 0o644),
}

# Masked: Debian's own services of packages the cluster runs as provisioner-* units (etcd, HAProxy, keepalived:
# only ours may run, and `down` leaves none behind), and boot steps a lab VM does not need. Under TCG
# every unit costs real seconds (utmp ~5 s, random-seed ~3 s, each pseudo-filesystem mount ~2.5 s).
DISABLED_UNITS: tuple[str, ...] = (
    "etcd.service",
    "haproxy.service",
    "keepalived.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "systemd-networkd-wait-online.service",
    "systemd-update-utmp.service",
    "systemd-update-utmp-runlevel.service",
    "systemd-random-seed.service",
    "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
    "systemd-pstore.service",
    "dev-hugepages.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-fs-fuse-connections.mount",
)
