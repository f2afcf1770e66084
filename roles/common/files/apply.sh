#!/bin/sh
# Installs this host's bundle (rendered on the operator's machine) and starts its services.
# Every action that changes the host prints a line starting with CHANGED; Ansible's changed_when reads them.
#   apply.sh install        copy changed files into place, reload systemd when a unit changed, record the hash
#   apply.sh start GROUP    (re)start GROUP's units: restart those whose files changed, start those not running
#   apply.sh uninstall      stop and disable every unit this bundle installed, remove its files and state
#   apply.sh ready URL CERT KEY   exit 0 when GET URL answers 200 (TLS verified against the cluster CA)
set -eu
STATE=/var/lib/provisioner
BUNDLE=$STATE/bundle
PENDING=$STATE/pending-restart

install_bundle() {
    reload=no
    while read -r mode path units; do
        if [ ! -f "$path" ] || ! cmp -s "$BUNDLE/files$path" "$path"; then
            mkdir -p "$(dirname "$path")"
            install -m "$mode" "$BUNDLE/files$path" "$path.new" && mv -f "$path.new" "$path"
            echo "CHANGED file $path"
            [ "$units" = "-" ] || echo "$units" | tr ',' '\n' >> "$PENDING"
            case "$path" in /etc/systemd/system/*) reload=yes ;; esac
        fi
    done < "$BUNDLE/manifest"
    if [ "$reload" = yes ]; then systemctl daemon-reload; fi
    cp "$BUNDLE/manifest" "$STATE/installed-manifest"
    cp "$BUNDLE/units" "$STATE/installed-units"
    cp "$BUNDLE/hash" "$STATE/bundle.sha256"
}

start_group() {
    for unit in $(awk -v g="$1" '$1 == g { print $2 }' "$STATE/installed-units"); do
        if [ -f "$PENDING" ] && grep -qx "$unit" "$PENDING"; then
            systemctl enable -q "$unit"
            systemctl restart "$unit"
            grep -vx "$unit" "$PENDING" > "$PENDING.tmp" || true
            mv -f "$PENDING.tmp" "$PENDING"
            echo "CHANGED restarted $unit"
        elif ! systemctl is-active -q "$unit"; then
            systemctl enable -q "$unit"
            systemctl start "$unit"
            echo "CHANGED started $unit"
        fi
    done
}

uninstall() {
    [ -f "$STATE/installed-units" ] || exit 0
    for unit in $(awk '{ print $2 }' "$STATE/installed-units"); do
        systemctl disable -q --now "$unit" 2>/dev/null || true
        echo "CHANGED stopped $unit"
    done
    awk '{ print $2 }' "$STATE/installed-manifest" | while read -r path; do rm -f "$path"; done
    rm -rf /etc/provisioner "$STATE"
    systemctl daemon-reload
    echo "CHANGED removed bundle"
}

ready() {
    python3 -c 'import ssl, sys, urllib.request as u
c = ssl.create_default_context(cafile="/etc/provisioner/pki/ca.crt")
c.load_cert_chain(sys.argv[2], sys.argv[3])
u.urlopen(sys.argv[1], context=c, timeout=3)' "$@"
}

case "${1:-}" in
    install) install_bundle ;;
    start) start_group "$2" ;;
    uninstall) uninstall ;;
    ready) ready "$2" "$3" "$4" ;;
    *) echo "usage: $0 install|start GROUP|uninstall|ready URL CERT KEY" >&2; exit 2 ;;
esac
