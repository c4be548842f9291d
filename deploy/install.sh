#!/usr/bin/env bash
# Installs the switchyard binary and a systemd unit on this host.
#   sudo deploy/install.sh controller|agent [path/to/switchyard]
set -euo pipefail
ROLE="${1:?usage: install.sh controller|agent [binary]}"
BIN="${2:-target/release/switchyard}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
case "$ROLE" in controller|agent) ;; *) echo "role must be controller or agent" >&2; exit 2;; esac
[ -x "$BIN" ] || { echo "binary $BIN not found: build it with 'cargo build --release -p switchyard'" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root (sudo)" >&2; exit 1; }
install -m 0755 "$BIN" /usr/local/bin/switchyard
id switchyard >/dev/null 2>&1 || useradd --system --home /var/lib/switchyard --shell /usr/sbin/nologin switchyard
for g in render video; do getent group "$g" >/dev/null && usermod -aG "$g" switchyard; done
install -d -m 0755 /etc/switchyard
[ -f /etc/switchyard/switchyard.toml ] || printf '[agent]\ncontroller = "http://CONTROLLER:50051"\n' > /etc/switchyard/switchyard.toml
install -m 0644 "$HERE/systemd/switchyard-$ROLE.service" /etc/systemd/system/
systemctl daemon-reload
systemctl enable --now "switchyard-$ROLE"
echo "installed: systemctl status switchyard-$ROLE; edit /etc/switchyard/switchyard.toml"
