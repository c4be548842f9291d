#!/usr/bin/env bash
# A Switchyard cluster on one machine: a controller host and agent hosts as network
# namespaces joined by a bridge, each with its own address and its own data directory,
# each running the real binary exactly as README's "Using it on a cluster" says.
#
#   sudo scripts/netns-cluster.sh up      # ctl = NET.1, agent-1 = NET.2, agent-2 = NET.3
#   sudo scripts/netns-cluster.sh down    # kills its processes, deletes namespaces, bridge, state
#   sudo scripts/netns-cluster.sh kill agent-1        # kill -9
#   sudo scripts/netns-cluster.sh start agent-1       # start it again
#   sudo scripts/netns-cluster.sh link agent-1 down   # pull its cable (and `up` to plug it back)
#   scripts/netns-cluster.sh pid agent-1 | check | reap
#
# Settings (environment): SY_NETNS_NAME (prefix of every namespace and link, ≤ 8 chars,
# default "sy"), SY_NETNS_NET (first three octets, default 10.77.0), SY_NETNS_AGENTS (default
# 2), SY_NETNS_STATE (default /tmp/switchyard-netns-NAME), SWITCHYARD_BIN (default
# target/release/switchyard, else target/debug/switchyard), SY_AGENT_ARGS_N (extra flags for
# agent-N), SY_CONTROLLER_ARGS (extra flags for the controller), SY_NETNS_OWNER (a pid: when
# it is gone, `reap` takes the cluster down), SY_API_TOKEN (the controller's client-API token,
# required since it listens beyond loopback; default: random, in STATE/ctl/api.toml),
# SY_NETNS_SECURE=1 (the control path under mTLS: the controller keeps its CA in
# STATE/ctl/data, each agent joins with its own single-use token; without it `--insecure`),
# SY_NETNS_INTRUDER=1 (one more namespace, `intruder` at NET.200, running nothing: a host
# with neither certificate nor token, for the tests to act from). The bridge holds NET.254 in this namespace, so
# this machine's tools reach every host.
#
# The processes run with a clean environment (HOME, PATH, XDG_CACHE_HOME only): nothing is
# sourced. Each host's cache (XDG_CACHE_HOME=STATE/HOST/cache) links the venv and models that
# scripts/setup.sh prepared. `up` cleans up after itself when it fails; `down` removes
# everything with the name's prefix, also what a killed run left behind.
set -euo pipefail

NAME="${SY_NETNS_NAME:-sy}"
NET="${SY_NETNS_NET:-10.77.0}"
AGENTS="${SY_NETNS_AGENTS:-2}"
STATE="${SY_NETNS_STATE:-/tmp/switchyard-netns-$NAME}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/switchyard"
MODELS="${SWITCHYARD_MODELS_DIR:-$CACHE/models}"
CONTROLLER="$NET.1"
BRIDGE="$NAME-br"

say() { printf 'netns-cluster: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ "${#NAME}" -le 8 ] || die "SY_NETNS_NAME '$NAME' is longer than 8 characters (interface names are limited to 15)"

binary() {
  if [ -n "${SWITCHYARD_BIN:-}" ]; then printf '%s\n' "$SWITCHYARD_BIN"; return; fi
  for p in "$ROOT/target/release/switchyard" "$ROOT/target/debug/switchyard"; do
    [ -x "$p" ] && { printf '%s\n' "$p"; return; }
  done
  die "no switchyard binary: build it (cargo build --release -p switchyard) or set SWITCHYARD_BIN"
}

hosts() { echo ctl; for i in $(seq 1 "$AGENTS"); do echo "agent-$i"; done; }
ns_of() { echo "$NAME-$1"; }
# Host-side end of a host's cable (in this namespace, a port of the bridge).
link_of() { case "$1" in ctl) echo "$NAME-c";; agent-*) echo "$NAME-a${1#agent-}";; intruder) echo "$NAME-x";; *) die "unknown host $1";; esac; }
ip_of() { case "$1" in ctl) echo "$NET.1";; agent-*) echo "$NET.$(( ${1#agent-} + 1 ))";; intruder) echo "$NET.200";; *) die "unknown host $1";; esac; }
secure() { [ "${SY_NETNS_SECURE:-0}" = 1 ]; }
# --insecure, unless the cluster runs under mTLS.
insecure_flag() { secure || echo "--insecure"; }
# What `switchyard status` needs from this namespace: the controller's URL (and, under mTLS,
# its data directory, whose client certificate the CLI uses).
status_cmd() {
  if secure; then
    SWITCHYARD_DATA_DIR="$STATE/ctl/data" switchyard status --controller https://$CONTROLLER:50051 -o json
  else
    switchyard status --controller http://$CONTROLLER:50051 -o json
  fi
}

check() {
  [ "$(id -u)" = 0 ] || { say "needs root (network namespaces)"; return 3; }
  command -v ip >/dev/null 2>&1 || { say "needs iproute2 (the ip command)"; return 3; }
  local probe="$NAME-probe$$"
  ip netns add "$probe" 2>/dev/null || { say "'ip netns add' does not work here (no CAP_SYS_ADMIN?)"; return 3; }
  ip netns del "$probe"
}

# Starts HOST's process in its namespace, with its own data directory; writes its pid.
start() {
  local host="$1" dir="$STATE/$1" args
  mkdir -p "$dir/cache/switchyard"
  ln -sfn "$CACHE/venv" "$dir/cache/switchyard/venv"
  ln -sfn "$MODELS" "$dir/cache/switchyard/models"
  local envs=(env -i "HOME=$HOME" "PATH=$STATE/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
              "XDG_CACHE_HOME=$dir/cache" "SWITCHYARD_LOG=${SWITCHYARD_LOG:-info}")
  [ -n "${SWITCHYARD_THREADS:-}" ] && envs+=("SWITCHYARD_THREADS=$SWITCHYARD_THREADS")
  cd "$dir"
  if [ "$host" = ctl ]; then
    # Its client APIs listen beyond loopback: they require a token (secure as shipped).
    printf '[api]\ntokens = ["%s"]\n' "${SY_API_TOKEN:=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')}" >"$dir/api.toml"
    chmod 600 "$dir/api.toml"
    # shellcheck disable=SC2086
    ip netns exec "$(ns_of ctl)" "${envs[@]}" "SWITCHYARD_CONFIG=$dir/api.toml" "SWITCHYARD_DATA_DIR=$dir/data" \
      switchyard controller $(insecure_flag) --cluster --listen 0.0.0.0:50051 --http-listen 0.0.0.0:8080 ${SY_CONTROLLER_ARGS:-} \
      >>"$dir/log" 2>&1 </dev/null &
  else
    args="SY_AGENT_ARGS_${host#agent-}"
    local join=()
    # Under mTLS: its own single-use token (a restart reuses the certificate it got).
    secure && join=(--join-token "$(cat "$dir/join-token")")
    # shellcheck disable=SC2086
    ip netns exec "$(ns_of "$host")" "${envs[@]}" \
      switchyard agent $(insecure_flag) "${join[@]}" --controller http://$CONTROLLER:50051 --agent-listen 0.0.0.0:50061 --node-name "$host" ${!args:-} \
      >>"$dir/log" 2>&1 </dev/null &
  fi
  echo $! >"$dir/pid"
  cd - >/dev/null
}

pid() { cat "$STATE/$1/pid" 2>/dev/null || die "$1 has no pid (is the cluster up?)"; }

kill9() {
  local p; p="$(pid "$1")"
  kill -9 "$p" 2>/dev/null || true
  while kill -0 "$p" 2>/dev/null; do sleep 0.02; done
}

# Polls `switchyard status` until N nodes are ready (or 90 s pass).
wait_ready() {
  local want="$1" n=0 json
  for _ in $(seq 1 450); do
    json="$(status_cmd 2>/dev/null || true)"
    n="$(grep -o '"state": *"ready"' <<<"$json" | wc -l || true)"
    [ "$n" -ge "$want" ] && return 0
    sleep 0.2
  done
  say "only $n of $want nodes ready after 90 s"
  return 1
}

net_up() {
  ip link add "$BRIDGE" type bridge
  ip addr add "$NET.254/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  local host ns link
  for host in $(hosts) $([ "${SY_NETNS_INTRUDER:-0}" = 1 ] && echo intruder); do
    ns="$(ns_of "$host")"; link="$(link_of "$host")"
    ip netns add "$ns"
    ip link add "$link" type veth peer name "${link}p"
    ip link set "${link}p" netns "$ns"
    ip -n "$ns" link set "${link}p" name eth0
    ip -n "$ns" addr add "$(ip_of "$host")/24" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    ip link set "$link" master "$BRIDGE" up
  done
}

down() {
  local ns p
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$NAME-" || true); do
    for p in $(ip netns pids "$ns" 2>/dev/null || true); do kill -9 "$p" 2>/dev/null || true; done
    for p in $(ip netns pids "$ns" 2>/dev/null || true); do
      while kill -0 "$p" 2>/dev/null; do sleep 0.02; done
    done
    ip netns del "$ns" 2>/dev/null || true
  done
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$NAME-" || true); do
    ip link del "$link" 2>/dev/null || true
  done
  rm -rf "$STATE"
}

# Takes down every cluster (default state directories) whose owner process is gone: what a
# test killed with SIGKILL left running.
reap() {
  local d owner
  for d in /tmp/switchyard-netns-*; do
    [ -f "$d/owner" ] || continue
    owner="$(cat "$d/owner")"
    kill -0 "$owner" 2>/dev/null && continue
    say "reaping ${d#/tmp/switchyard-netns-} (owner $owner is gone)"
    SY_NETNS_NAME="${d#/tmp/switchyard-netns-}" SY_NETNS_STATE="$d" bash "${BASH_SOURCE[0]}" down
  done
}

show_logs() {
  local host
  for host in $(hosts); do
    [ -f "$STATE/$host/log" ] && { say "--- $host log (last 20 lines)"; tail -n 20 "$STATE/$host/log" >&2; }
  done
}

up() {
  check || exit $?
  [ -x "$CACHE/venv/bin/python" ] || die "no venv under $CACHE: run scripts/setup.sh first"
  local bin; bin="$(binary)"
  down
  trap 'rc=$?; if [ $rc -ne 0 ]; then say "up failed (exit $rc): tearing down"; show_logs; down; fi' EXIT
  trap 'exit 130' INT TERM
  mkdir -p "$STATE/bin"
  [ -n "${SY_NETNS_OWNER:-}" ] && echo "$SY_NETNS_OWNER" >"$STATE/owner"
  ln -sfn "$(readlink -f "$bin")" "$STATE/bin/switchyard"
  export PATH="$STATE/bin:$PATH"
  net_up
  start ctl
  local host
  if secure; then
    # The controller makes its CA at start; one single-use join token per agent host.
    for _ in $(seq 1 150); do [ -f "$STATE/ctl/data/pki/ca.pem" ] && break; sleep 0.2; done
    [ -f "$STATE/ctl/data/pki/ca.pem" ] || die "the controller made no CA in $STATE/ctl/data/pki"
    for host in $(hosts | grep -v '^ctl$'); do
      mkdir -p "$STATE/$host"
      switchyard token create --data-dir "$STATE/ctl/data" --ttl 1h >"$STATE/$host/join-token"
    done
  fi
  for host in $(hosts | grep -v '^ctl$'); do start "$host"; done
  wait_ready "$AGENTS"
  trap - EXIT INT TERM
  say "up: controller grpc=$CONTROLLER:50051 http=$CONTROLLER:8080, $AGENTS agents ($NET.2-$NET.$((AGENTS + 1))), state in $STATE"
  echo "grpc=$CONTROLLER:50051 http=$CONTROLLER:8080 state=$STATE"
}

cmd="${1:-}"; shift || true
case "$cmd" in
  up) up ;;
  down) down ;;
  check) check ;;
  reap) reap ;;
  start) [ -n "${1:-}" ] || die "usage: start HOST"; PATH="$STATE/bin:$PATH" start "$1" ;;
  kill) [ -n "${1:-}" ] || die "usage: kill HOST"; kill9 "$1" ;;
  pid) pid "${1:?usage: pid HOST}" ;;
  link) case "${2:-}" in up|down) ip link set "$(link_of "${1:?usage: link HOST up|down}")" "$2" ;; *) die "usage: link HOST up|down" ;; esac ;;
  wait) PATH="$STATE/bin:$PATH" wait_ready "${1:-$AGENTS}" ;;
  *) sed -n '2,24p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
esac
