#!/bin/busybox sh
# The init of ipmpd's test VM (see xtask/src/vm/): mounts the host's root read-only over 9p,
# overlays the directories tests write to, makes it the root and runs /cmd there as root. Its exit status
# goes to the serial console as VM-EXIT-STATUS=N; then the VM powers off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in /mods/*.ko; do insmod "$m" || echo "vm-init: insmod $m failed"; done
R=/newroot
mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=512000,cache=loose hostroot $R \
    || { echo "vm-init: the 9p mount of the host root failed"; echo "VM-EXIT-STATUS=125"; reboot -f; }
# Module autoloading (qdiscs, nftables, veth): the kernel runs its modprobe helper from this
# initramfs, so the helper enters the host root, which has the guest kernel's modules.
printf '#!/bin/busybox sh\nexec /bin/busybox chroot /newroot /sbin/modprobe "$@"\n' >/bin/modprobe-host
chmod +x /bin/modprobe-host
echo /bin/modprobe-host >/proc/sys/kernel/modprobe
mount -t tmpfs -o mode=755 run $R/run
for d in tmp var etc root home; do
    [ -d $R/$d ] || continue
    mkdir -p $R/run/.ovl/$d/u $R/run/.ovl/$d/w
    mount -t overlay -o lowerdir=$R/$d,upperdir=$R/run/.ovl/$d/u,workdir=$R/run/.ovl/$d/w ovl-$d $R/$d
done
chmod 1777 $R/tmp
mount --move /proc $R/proc; mount --move /sys $R/sys; mount --move /dev $R/dev
mount -t devpts -o ptmxmode=666 devpts $R/dev/pts 2>/dev/null
mount -t tmpfs shm $R/dev/shm 2>/dev/null
mount -t bpf bpf $R/sys/fs/bpf
mount -t securityfs securityfs $R/sys/kernel/security 2>/dev/null
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup 2>/dev/null
cp /cmd $R/run/vm-cmd
cp /bin/busybox $R/run/busybox
# The host root becomes the namespace's root (as switch_root does), not a chroot inside it: a
# chrooted process may not create user namespaces, which the tests need. The modprobe helper is
# then the host root's own.
# Until the chroot, "/" still means the initramfs: relative paths only.
cd $R
mount --move . /
echo /sbin/modprobe >proc/sys/kernel/modprobe
# The modules the tests use are loaded before the first test: loading one on demand (xz-compressed
# on 6.12, read over 9p, under TCG) takes seconds, and a test that times a fault from just before
# its nft rule would count them (a 6.12 run saw 2.6 s from the nft command to the first lost probe).
# A module the run loaded on demand all the same is named on VM-MODULES-ON-DEMAND= (xtask warns),
# so that the list follows what the tests use.
exec ./run/busybox chroot . /run/busybox sh -c '
    /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root TERM=dumb LANG=C.UTF-8 /bin/bash -c "ip link set lo up; modprobe -a veth bridge macvlan nf_tables sch_tbf sch_ingress cls_u32 cls_bpf cls_matchall act_gact tcp_diag inet_diag; cat /proc/modules >/run/vm-modules-preloaded; . /run/vm-cmd"
    status=$?
    /run/busybox awk "NR == FNR { before[\$1] = 1; next } !(\$1 in before) { printf \"%s \", \$1 }" \
        /run/vm-modules-preloaded /proc/modules >/run/vm-modules-new 2>/dev/null
    [ -s /run/vm-modules-new ] && echo "VM-MODULES-ON-DEMAND=$(cat /run/vm-modules-new)"
    echo "VM-EXIT-STATUS=$status"
    /run/busybox reboot -f'
