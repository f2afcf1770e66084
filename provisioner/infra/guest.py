"""What every local VM image carries besides packages: the files that make a rootfs boot fast and take its identity.

A VM's identity (SSH host keys, the operator's key, its lab address) arrives on a small "seed" disk that is a
plain tar archive (virtio serial `pvseed`); `provisioner-seed.service` unpacks it over `/` before networkd and
sshd start, on every boot. Hostname and machine-id come from the kernel command line
(`systemd.hostname=`, `systemd.machine_id=`). This needs no cloud-init, no guest tools and no image mounting
on the host: building a seed is writing a tar file.
"""

from __future__ import annotations

__all__ = ["DISABLED_UNITS", "GUEST_FILES", "MGMT_MAC", "SEED_SERIAL"]

SEED_SERIAL = "pvseed"
MGMT_MAC = "52:54:00:12:34:56"

_SEED_UNIT = f"""\
[Unit]
Description=Per-VM identity from the provisioner seed disk
DefaultDependencies=no
Requires=dev-disk-by\\x2did-virtio\\x2d{SEED_SERIAL}.device
After=dev-disk-by\\x2did-virtio\\x2d{SEED_SERIAL}.device systemd-remount-fs.service
Before=sysinit.target systemd-networkd.service ssh.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/tar -xpf /dev/disk/by-id/virtio-{SEED_SERIAL} -C /
ExecStart=/sbin/resize2fs /dev/vda

[Install]
WantedBy=sysinit.target
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

GUEST_FILES: dict[str, tuple[str, int]] = {
    "etc/systemd/system/provisioner-seed.service": (_SEED_UNIT, 0o644),
    "etc/systemd/network/20-mgmt.network": (_MGMT_NETWORK, 0o644),
    "etc/ssh/sshd_config.d/provisioner.conf": (_SSHD, 0o644),
    "etc/fstab": ("/dev/vda / ext4 rw,noatime 0 0\n", 0o644),
    "etc/hostname": ("localhost\n", 0o644),
    "etc/hosts": ("127.0.0.1 localhost\n", 0o644),
    "etc/resolv.conf": ("nameserver 10.0.2.3\n", 0o644),
    "etc/machine-id": ("", 0o444),
    "etc/initramfs-tools/conf.d/provisioner": ("MODULES=list\n", 0o644),
    "etc/initramfs-tools/modules": ("virtio_pci\nvirtio_blk\next4\n", 0o644),
}

# Installed services that a cluster role starts when it wants them; at boot they only cost time.
DISABLED_UNITS: tuple[str, ...] = (
    "etcd.service",
    "haproxy.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "systemd-networkd-wait-online.service",
)
