#!/bin/sh
# Installs this host's bundle (rendered on the operator's machine) and starts its services.
# Every action that changes the host prints a line starting with CHANGED; Ansible's changed_when reads them.
# Under TCG every fork costs, so the common paths run a handful of processes.
#   apply.sh install        put changed files in place, enable units, reload systemd when a unit changed
#   apply.sh start GROUP    restart GROUP's units whose files changed, start those not running
#   apply.sh uninstall      stop every unit this bundle installed, remove its files and state
#   apply.sh ready URL CERT KEY   exit 0 when GET URL answers 200 (TLS verified against the cluster CA)
#   apply.sh vrrp-interface ADDRESS FILE   write `interface NAME` (the interface holding ADDRESS) for keepalived
set -eu
STATE=/var/lib/provisioner
BUNDLE=$STATE/bundle
PENDING=$STATE/pending-restart
WANTS=/etc/systemd/system/multi-user.target.wants

install_bundle() {
    if [ ! -f "$STATE/installed-manifest" ]; then
        # A fresh host: every file is new, the archive already carries the modes.
        cp -a "$BUNDLE/files/." /
        awk '$3 != "-" { gsub(",", "\n", $3); print $3 }' "$BUNDLE/manifest" >> "$PENDING"
        echo "CHANGED installed $(wc -l < "$BUNDLE/manifest") files"
        reload=yes
    else
        reload=no
        while read -r mode path units; do
            if ! cmp -s "$BUNDLE/files$path" "$path"; then
                mkdir -p "$(dirname "$path")"
                cp -p "$BUNDLE/files$path" "$path.new" && chmod "$mode" "$path.new" && mv -f "$path.new" "$path"
                echo "CHANGED file $path"
                [ "$units" = "-" ] || echo "$units" | tr ',' '\n' >> "$PENDING"
                case "$path" in /etc/systemd/system/*) reload=yes ;; esac
            fi
        done < "$BUNDLE/manifest"
    fi
    mkdir -p "$WANTS"
    for unit in $(awk '{ print $2 }' "$BUNDLE/units"); do ln -sf "../$unit" "$WANTS/$unit"; done
    if [ "$reload" = yes ]; then systemctl daemon-reload; fi
    cp "$BUNDLE/manifest" "$STATE/installed-manifest"
    cp "$BUNDLE/units" "$STATE/installed-units"
    cp "$BUNDLE/hash" "$STATE/bundle.sha256"
}

start_group() {
    units=$(awk -v g="$1" '$1 == g { print $2 }' "$STATE/installed-units")
    [ -n "$units" ] || return 0
    todo=""
    for unit in $units; do
        if [ -f "$PENDING" ] && grep -qx "$unit" "$PENDING"; then todo="$todo $unit"; fi
    done
    # `is-active` prints one state per unit, in order. "activating" is a unit systemd is already
    # (re)starting, e.g. a controller-manager that exited on losing its Lease: not ours to restart.
    set -- $(systemctl is-active $units || true)
    for unit in $units; do
        case " $todo " in
            *" $unit "*) ;;
            *) case "$1" in active|activating|reloading) ;; *) todo="$todo $unit" ;; esac ;;
        esac
        shift
    done
    [ -n "$todo" ] || return 0
    systemctl restart $todo
    if [ -f "$PENDING" ]; then
        grep -vx -e "$(echo $todo | tr ' ' '\n')" "$PENDING" > "$PENDING.tmp" || true
        mv -f "$PENDING.tmp" "$PENDING"
    fi
    echo "CHANGED restarted$todo"
}

uninstall() {
    [ -f "$STATE/installed-units" ] || exit 0
    units=$(awk '{ print $2 }' "$STATE/installed-units")
    systemctl stop $units || true
    for unit in $units; do rm -f "$WANTS/$unit"; done
    awk '{ print $2 }' "$STATE/installed-manifest" | xargs rm -f
    rm -rf /etc/provisioner "$STATE"
    systemctl daemon-reload
    # A unit that ended in "failed" stays listed, file gone, until its record is reset.
    systemctl reset-failed $units 2>/dev/null || true
    echo "CHANGED removed$(echo $units | tr '\n' ' ')"
}

ready() {
    # openssl, not Python: keepalived runs this every few seconds on every master, and on a loaded TCG guest a
    # Python start cost ~3 s of CPU (checks timed out and starved etcd); the name or IP is verified too.
    hostport=${1#https://}; path=/${hostport#*/}; hostport=${hostport%%/*}; host=${hostport%:*}
    case "$host" in *[!0-9.]*) name=-verify_hostname ;; *) name=-verify_ip ;; esac
    printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$host" |
        timeout 15 openssl s_client -quiet -verify_return_error -CAfile /etc/provisioner/pki/ca.crt \
            -cert "$2" -key "$3" $name "$host" -connect "$hostport" 2>/dev/null | head -n 1 | grep -q '^HTTP/1\.[01] 200 '
}

vrrp_interface() {
    # Interface names differ between hosts; the operator's machine only knows the address.
    iface=$(ip -o -4 addr show to "$1/32" | awk '{ print $2; exit }')
    if [ -z "$iface" ]; then echo "no interface holds $1" >&2; exit 1; fi
    echo "interface $iface" > "$2"
}

case "${1:-}" in
    install) install_bundle ;;
    start) start_group "$2" ;;
    uninstall) uninstall ;;
    ready) ready "$2" "$3" "$4" ;;
    vrrp-interface) vrrp_interface "$2" "$3" ;;
    *) echo "usage: $0 install|start GROUP|uninstall|ready URL CERT KEY|vrrp-interface ADDRESS FILE" >&2; exit 2 ;;
esac
