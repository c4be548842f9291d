#!/usr/bin/env bash
# Installs the switchyard binary, its config and the systemd unit of one role on this host
# (the .deb does the same for both roles: see deploy/README.md).
#
#   sudo deploy/install.sh --role controller
#   sudo deploy/install.sh --role agent --controller http://10.0.0.2:50051
#
# Options: --binary PATH (default target/release/switchyard), --root DIR (install under DIR
# instead of /: no user, no systemctl; for packaging and tests), --no-start (install, don't
# enable or start). The config (/etc/switchyard/switchyard.toml, kept if it exists) gets the
# role's section of deploy/switchyard.toml: [controller] (cluster = true, listening on every
# interface) or [agent] (the controller URL, listening on every interface).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROLE="" CONTROLLER="" BIN="target/release/switchyard" ROOT="" START=1
usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --role) ROLE="${2:-}"; shift 2 ;;
    --controller) CONTROLLER="${2:-}"; shift 2 ;;
    --binary) BIN="${2:-}"; shift 2 ;;
    --root) ROOT="${2:-}"; START=0; shift 2 ;;
    --no-start) START=0; shift ;;
    -h|--help) usage ;;
    *) echo "install.sh: unknown option $1" >&2; usage ;;
  esac
done
case "$ROLE" in controller|agent) ;; *) echo "install.sh: --role controller|agent is required" >&2; usage ;; esac
if [ -n "$CONTROLLER" ] && [ "$ROLE" != agent ]; then
  echo "install.sh: --controller is for --role agent" >&2; exit 2
fi
case "$CONTROLLER" in ""|http://*|https://*) ;; *) echo "install.sh: --controller must be http://HOST:PORT, got $CONTROLLER" >&2; exit 2 ;; esac
[ -x "$BIN" ] || { echo "install.sh: binary $BIN not found: build it with 'cargo build --release -p switchyard' or pass --binary" >&2; exit 1; }
if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then echo "install.sh: run as root (sudo), or use --root DIR" >&2; exit 1; fi

DEST="${ROOT:-}"
install -d -m 0755 "$DEST/usr/local/bin" "$DEST/etc/switchyard" "$DEST/etc/systemd/system"
install -m 0755 "$BIN" "$DEST/usr/local/bin/switchyard"

# The role's section of the example config (one home for the settings: deploy/switchyard.toml).
section() {
  awk -v want="[$1]" '
    /^\[/ { keep = ($0 == want) }
    keep { print }
  ' "$HERE/switchyard.toml"
}
CONFIG="$DEST/etc/switchyard/switchyard.toml"
if [ -f "$CONFIG" ]; then
  echo "install.sh: keeping the existing $CONFIG"
else
  {
    echo "# Written by deploy/install.sh --role $ROLE; see deploy/switchyard.toml for every role."
    if [ "$ROLE" = agent ] && [ -n "$CONTROLLER" ]; then
      section agent | sed "s|^controller = .*|controller = \"$CONTROLLER\"|"
    else
      section "$ROLE"
    fi
  } > "$CONFIG.tmp"
  mv "$CONFIG.tmp" "$CONFIG"
  chmod 0644 "$CONFIG"
  if [ "$ROLE" = agent ] && [ -z "$CONTROLLER" ]; then
    echo "install.sh: the agent points at a controller on this host; pass --controller URL (or edit $CONFIG) for another"
  fi
fi

# The unit, with the binary where this script puts it.
sed 's|^ExecStart=/usr/bin/switchyard|ExecStart=/usr/local/bin/switchyard|' \
  "$HERE/systemd/switchyard-$ROLE.service" > "$DEST/etc/systemd/system/switchyard-$ROLE.service"
chmod 0644 "$DEST/etc/systemd/system/switchyard-$ROLE.service"

if [ -n "$ROOT" ]; then
  echo "installed under $ROOT (no user, no systemctl)"
  exit 0
fi
id switchyard >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/switchyard \
  --no-create-home --shell /usr/sbin/nologin switchyard
for g in render video; do getent group "$g" >/dev/null && usermod -aG "$g" switchyard; done
install -d -o switchyard -g switchyard -m 0755 /var/lib/switchyard /var/cache/switchyard
if [ "$START" = 1 ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now "switchyard-$ROLE"
  echo "installed and started: systemctl status switchyard-$ROLE"
else
  echo "installed; start it with: systemctl daemon-reload && systemctl enable --now switchyard-$ROLE"
fi
echo "models: run scripts/setup.sh as the switchyard user with XDG_CACHE_HOME=/var/cache (or copy ~/.cache/switchyard there)"
