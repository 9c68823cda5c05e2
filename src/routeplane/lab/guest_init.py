"""What a QEMU guest runs: its ``/init``, its DHCP client's script, its kernel command line.

The guest is a busybox initramfs (docs/design/guests.md says why). Its ``/init`` does what
a cloud image's boot does, in the order a user would see it on the serial console:

1. mount proc, sys, devtmpfs, devpts, /tmp and /run; load the kernel modules listed in
   ``/etc/modules.load`` (virtio's PCI transport, virtio-net, virtio-console, vsock,
   virtio-rng — the builder's order, dependencies first);
2. name itself (``rp.name=``) and bring up ``eth0``; busybox's ``udhcpc`` runs in the
   background and its script applies the lease and prints it (:data:`LEASE`; see
   :data:`UDHCPC_SCRIPT`). An address on the command line (``rp.ip=10.28.0.13/16
   rp.gw=10.28.0.1``), for a tap with no DHCP server, is configured at once and replaced
   by a lease when one comes; a lab's guests get none;
3. start the services: ``dropbear`` on tcp/22 (a real SSH server; its host key is made at
   the first connection, so every guest has its own; ``rp.ssh_key=`` authorises one key
   for root), the name service on tcp/:data:`NAME_PORT` (answers the guest's hostname,
   the lab's stand-in for ``ssh … hostname``), the service-IP follower
   (:mod:`routeplane.lab.guest_follower`) and the control channel's command runner;
4. print :data:`READY` on the console and idle (``/init`` must never exit).

The control channel is a virtio-serial port named :data:`CONTROL_PORT` — not the network
under test. The host writes one line per command, the command's shell text in base64;
the guest answers ``rp-out``, the base64 of its standard output, ``rp-err``, the base64 of
its standard error, and ``rp-rc N`` (its exit status). ``routeplane.lab.guest_control``
is the host's end.

``rp.probe=1`` makes ``/init`` print :data:`PROBE_OK` and power off at once: the
accelerator probe (``routeplane.lab.qemu``) boots with it.

This module is pure text: it runs nothing.
"""

from __future__ import annotations

from routeplane.lab import guest_follower

NAME_PORT = 2222
CONTROL_PORT = "rp.ctl"
READY = "rp-guest-ready"
PROBE_OK = "rp-probe-ok"
LEASE = "rp-dhcp"  # the DHCP script's console line: rp-dhcp bound 10.28.0.2/16 router …

INIT_SCRIPT = r"""#!/bin/busybox sh
# routeplane guest init (routeplane.lab.guest_init): see that module's docstring
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /tmp /run /var/log
mount -t devpts devpts /dev/pts
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
for module in $(cat /etc/modules.load); do
    insmod "/lib/modules/$module.ko" || echo "rp-init: insmod $module failed"
done

arg() {
    for word in $(cat /proc/cmdline); do
        case "$word" in "$1="*) echo "${word#*=}"; return ;; esac
    done
}

if [ -n "$(arg rp.probe)" ]; then
    echo "@PROBE_OK@"
    poweroff -f
fi

name=$(arg rp.name)
hostname "${name:-guest}"
ip link set lo up
ip link set eth0 up
static=$(arg rp.ip)
gateway=$(arg rp.gw)
if [ -n "$static" ]; then
    ip addr add "$static" dev eth0
    [ -n "$gateway" ] && ip route add default via "$gateway" dev eth0
fi
udhcpc -i eth0 -f -S -s /etc/udhcpc.script -x "hostname:${name:-guest}" >/dev/null 2>&1 &

key=$(arg rp.ssh_key)
if [ -n "$key" ]; then
    mkdir -p /root/.ssh
    echo "$key" | sed 's/:/ /' >/root/.ssh/authorized_keys
    chmod 700 /root/.ssh
    chmod 600 /root/.ssh/authorized_keys
fi
mkdir -p /etc/dropbear
dropbear -R -s -E -p 22 2>/var/log/dropbear.log

nc -ll -p @NAME_PORT@ -e /bin/hostname &

# the service-IP follower: what `routeplane guest` does, in busybox sh (see FOLLOWER)
sh /bin/rp-follow eth0 >/dev/console 2>&1 &

control_port() {
    for tries in $(seq 50); do
        for port in /sys/class/virtio-ports/*; do
            if [ "$(cat "$port/name" 2>/dev/null)" = "@CONTROL_PORT@" ]; then
                echo "/dev/${port##*/}"
                return
            fi
        done
        sleep 0.1
    done
}

serve_control() {
    exec 3<>"$1"
    while :; do
        if ! read -r line <&3; then
            sleep 0.2
            continue
        fi
        echo "$line" | base64 -d >/tmp/rp-ctl.sh
        sh /tmp/rp-ctl.sh </dev/null >/tmp/rp-ctl.out 2>/tmp/rp-ctl.err
        status=$?
        {
            echo rp-out
            base64 /tmp/rp-ctl.out
            echo rp-err
            base64 /tmp/rp-ctl.err
            echo "rp-rc $status"
        } >&3
    done
}

port=$(control_port)
if [ -n "$port" ]; then
    serve_control "$port" &
else
    echo "rp-init: no virtio-serial port @CONTROL_PORT@"
fi

echo "@READY@ $(hostname) $(uname -r)"
while :; do sleep 3600; done
"""

# how a udhcpc script applies a lease's MTU and routes (the guest image's and the lab's)
LEASE_ROUTES = r"""    [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
    if [ -n "$staticroutes" ]; then
        set -- $staticroutes
        while [ $# -ge 2 ]; do
            ip route replace "$1" via "$2" dev "$interface"
            shift 2
        done
    elif [ -n "$router" ]; then
        set -- $router
        ip route replace default via "$1" dev "$interface"
    fi
"""

UDHCPC_SCRIPT = (
    r"""#!/bin/sh
# udhcpc's script: apply a lease as a cloud image would (address, mask, routers,
# classless static routes, DNS, MTU, hostname). deconfig keeps the command line's
# static address, so a guest without a DHCP server stays reachable.
event=$1
case "$event" in
deconfig)
    ip link set "$interface" up
    ;;
bound|renew)
    if [ "$event" = bound ]; then
        ip -4 addr flush dev "$interface"
    fi
    ip addr add "$ip/${mask:-32}" dev "$interface" 2>/dev/null
"""
    + LEASE_ROUTES
    + r"""    : >/etc/resolv.conf
    [ -n "$domain" ] && echo "search $domain" >>/etc/resolv.conf
    for server in $dns; do echo "nameserver $server" >>/etc/resolv.conf; done
    [ -n "$hostname" ] && hostname "$hostname"
    echo "@LEASE@ $event $ip/${mask:-32} router ${router:-none} server ${serverid:-none}" \
        "lease ${lease:-0}" >/dev/console
    echo "$event $ip/${mask:-32} $serverid" >/run/rp-lease
    ;;
esac
exit 0
"""
)


def init_script() -> str:
    """``/init`` with this module's constants filled in."""
    return (
        INIT_SCRIPT.replace("@PROBE_OK@", PROBE_OK)
        .replace("@NAME_PORT@", str(NAME_PORT))
        .replace("@CONTROL_PORT@", CONTROL_PORT)
        .replace("@READY@", READY)
    )


def udhcpc_script() -> str:
    """The DHCP client's script with this module's console mark filled in."""
    return UDHCPC_SCRIPT.replace("@LEASE@", LEASE)


def scripts() -> dict[str, str]:
    """Every script of the image, by its path there (what the image's key hashes)."""
    return {
        "init": init_script(),
        "etc/udhcpc.script": udhcpc_script(),
        guest_follower.PATH: guest_follower.follower_script(),
    }


def kernel_cmdline(
    name: str,
    address: str | None = None,
    gateway: str | None = None,
    ssh_key: str | None = None,
    *,
    probe: bool = False,
) -> str:
    """The guest's kernel command line: the serial console, then the ``rp.`` settings
    (an OpenSSH public key travels with its first space as ``:``, its comment dropped)."""
    words = ["console=ttyS0", "panic=-1", "quiet", f"rp.name={name}"]
    if probe:
        words.append("rp.probe=1")
    if address:
        words.append(f"rp.ip={address}")
    if gateway:
        words.append(f"rp.gw={gateway}")
    if ssh_key:
        kind, blob = ssh_key.split()[:2]
        words.append(f"rp.ssh_key={kind}:{blob}")
    return " ".join(words)


__all__ = [
    "CONTROL_PORT",
    "INIT_SCRIPT",
    "LEASE",
    "LEASE_ROUTES",
    "NAME_PORT",
    "PROBE_OK",
    "READY",
    "UDHCPC_SCRIPT",
    "init_script",
    "kernel_cmdline",
    "scripts",
    "udhcpc_script",
]
