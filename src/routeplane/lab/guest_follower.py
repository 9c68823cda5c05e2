"""The service-IP follower of a QEMU guest: ``routeplane guest``'s job in busybox ``sh``.

A service IP moved onto a port must appear on the VM's interface, and leave the VM it
was moved from, with no one logging in. Namespace VMs run ``routeplane guest`` (Python).
The busybox guest has no Python, and shipping one costs more than the whole image
(docs/design/guests.md gives the figures), so the guest runs this script instead. It
speaks the same protocol to the same service and keeps the same promises:

- ``GET http://169.254.169.254/routeplane/v1/addresses`` (HTTP/1.0 over busybox ``nc
  -w 40``: busybox 1.35's static ``wget -O -`` crashes in the guest), then the long poll ``?wait=<revision>``: the host's metadata service answers as soon as the
  port's record changes, or after 25 s with the same state (which also repairs drift);
- each address of the port the interface lacks is added as a host prefix (``/32``,
  ``/128``: nothing is on-link in a routed network);
- it removes only what it added itself (remembered in ``/run/rp-follow.owned``), so the
  address DHCP gave and anything added by hand stay; an address someone else removed is
  forgotten;
- a failure (no address yet, the service unreachable, an answer it cannot read) never
  means "no addresses": the interface is left as it is and the request retried after
  0.1 s, doubling to 3 s.

The answer is the service's own compact JSON; ``sed`` and ``grep -o`` take out the
revision and the ``ip_address`` values (the service writes nothing else by those names).
Each change is printed on the guest's console (``rp-follow added 10.28.0.23/32 …``), so
the host can see when the guest acted.

This module is pure text: it runs nothing.
"""

from __future__ import annotations

PATH = "bin/rp-follow"  # in the image
FOLLOWING = "rp-follow following port"
ADDED = "rp-follow added"
REMOVED = "rp-follow removed"

FOLLOWER = r"""#!/bin/sh
# routeplane's service-IP follower for busybox guests (routeplane.lab.guest_follower)
interface=${1:-eth0}
service=169.254.169.254
path=/routeplane/v1/addresses
owned=/run/rp-follow.owned
: >>"$owned"
revision=
port=
delays="0.1 0.2 0.4 0.8 1.6 3"

backoff() {
    set -- $delays
    sleep "$1"
    [ $# -gt 1 ] && shift
    delays="$*"
}

present() {
    ip -o addr show dev "$interface" | awk '$3 == "inet" || $3 == "inet6" { print $4 }'
}

while :; do
    query=
    [ -n "$revision" ] && query="?wait=$revision"
    answer=$(printf 'GET %s%s HTTP/1.0\r\n\r\n' "$path" "$query" | nc -w 40 "$service" 80)
    case "$answer" in "HTTP/1."?" 200 "*) ;; *) backoff; continue ;; esac
    body=$(echo "$answer" | sed '1,/^\r*$/d')
    latest=$(echo "$body" | sed -n 's/.*"revision": *\([0-9][0-9]*\).*/\1/p')
    if [ -z "$latest" ]; then
        backoff
        continue
    fi
    delays="0.1 0.2 0.4 0.8 1.6 3"
    wanted=$(echo "$body" | grep -o '"ip_address": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/')
    if [ -z "$port" ]; then
        port=$(echo "$body" | sed -n 's/.*"port_id": *"\([^"]*\)".*/\1/p')
        echo "@FOLLOWING@ $port revision $latest"
    fi
    have=" $(present | tr '\n' ' ') "
    have_ips=" $(echo "$have" | sed 's#/[0-9]*##g') "
    kept=
    for address in $wanted; do
        case "$have_ips" in *" $address "*) continue ;; esac
        case "$address" in *:*) prefix="$address/128" ;; *) prefix="$address/32" ;; esac
        if ip addr add "$prefix" dev "$interface"; then
            kept="$kept $prefix"
            echo "@ADDED@ $prefix (revision $latest)"
        fi
    done
    for prefix in $(cat "$owned"); do
        case "$have" in *" $prefix "*) ;; *) continue ;; esac
        if echo "$wanted" | grep -qxF "${prefix%/*}"; then
            kept="$kept $prefix"
        elif ip addr del "$prefix" dev "$interface"; then
            echo "@REMOVED@ $prefix (revision $latest)"
        else
            kept="$kept $prefix"
        fi
    done
    echo $kept >"$owned"
    revision=$latest
done
"""


def follower_script() -> str:
    """The script with this module's console marks filled in."""
    return (
        FOLLOWER.replace("@FOLLOWING@", FOLLOWING)
        .replace("@ADDED@", ADDED)
        .replace("@REMOVED@", REMOVED)
    )


__all__ = ["ADDED", "FOLLOWER", "FOLLOWING", "PATH", "REMOVED", "follower_script"]
