#!/bin/bash
# dracut module "cnos": puts cnos-bootstrapper, its unit, its network configuration, the libraries
# it loads at run time and the kernel modules it needs into the initrd. See initrd/README.md.

check() {
        require_binaries cnos-bootstrapper || return 1
        # Only on request (dracut.conf: add_dracutmodules+=" cnos "), never by host detection.
        return 255
}

depends() {
        # systemd-hostnamed: the node's name comes from DHCP (networkd sets it through hostnamed).
        echo systemd systemd-udevd systemd-veritysetup systemd-networkd systemd-hostnamed dm
        return 0
}

installkernel() {
        # The state disk (dm-crypt, optionally with dm-integrity), the verity root, the virtual
        # hardware of the supported clouds (QEMU/KVM virtio, GCP gVNIC + virtio-scsi, Azure Hyper-V,
        # AWS Nitro NVMe + ENA) and the TPM (TIS/CRB are built into Debian's kernel).
        # dm-crypt's aes-xts-plain64 needs the xts template and AES-NI (both modules in Debian's
        # kernel), integrity's hmac(sha256) authenc.
        instmods dm_crypt dm_integrity dm_verity squashfs ext4 \
                xts aesni_intel ecb crypto_simd cryptd authenc sha512_generic \
                virtio_pci virtio_blk virtio_scsi virtio_net virtio_console \
                nvme ena gve hv_vmbus hv_storvsc hv_netvsc sd_mod \
                tpm_crb tpm_tis
}

install() {
        inst_binary cnos-bootstrapper
        # tss2's TCTI loader dlopen()s the device TCTI: ldd cannot see it.
        inst_libdir_file "libtss2-tcti-device.so*"
        # The state disk's filesystem is created by the bootstrapper on first boot.
        inst_multiple -o mkfs.ext4 e2fsck
        inst_simple "$moddir/cnos-bootstrapper.service" "$systemdsystemunitdir/cnos-bootstrapper.service"
        inst_simple "$moddir/10-cnos-dhcp.network" "$systemdnetworkconfdir/10-cnos-dhcp.network"
        $SYSTEMCTL -q --root "$initdir" add-wants initrd.target cnos-bootstrapper.service
        # systemd-udevd's module ships the 13 MB hardware database; nothing in this initrd needs it
        # (interface names come from udev's built-in net_id, which does not read it).
        rm -f "$initdir/usr/lib/udev/hwdb.bin" "$initdir/etc/udev/hwdb.bin"
}
