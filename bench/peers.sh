#!/usr/bin/env bash
# Thin wrapper around ../shared/peers/lib.sh for bench/run.ts.
#
#   bash bench/peers.sh start      -> starts (or reuses) the private sshd on 127.0.0.1:2222
#                                     and prints KEY=VALUE lines: SSH, SSHD_PID, STARTED (1 if
#                                     this call started it, 0 if it was already running).
#   bash bench/peers.sh stop PID   -> stops that sshd by PID (only if it is still the one in
#                                     the pid file) and removes the pid file.
#   bash bench/peers.sh fanout-start DIR PORT... -> one private sshd per PORT (127.0.0.1), each
#                                     with lib.sh's fan-out settings and key, its files in DIR, and
#                                     `ForceCommand internal-sftp -d DIR/hN` so host N's relative
#                                     paths land in its own folder (scp speaks SFTP since OpenSSH 9).
#                                     Prints SSH_OPTS (config + known_hosts for them) and PIDS.
#   bash bench/peers.sh fanout-stop PID... -> stops those sshd daemons by PID.
#
# The peers dir is ../shared/peers relative to the repository; override with
# SHELLWIRE_PEERS_DIR (in a git worktree the main checkout's ../shared/peers is found). Runtime files live under $ANCHORS_TMP (default /tmp/anchors).
set -u

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEERS_DIR="${SHELLWIRE_PEERS_DIR:-$HERE/../../shared/peers}"
# In a git worktree elsewhere, ../shared/peers is relative to the main checkout.
if [ -z "${SHELLWIRE_PEERS_DIR:-}" ] && [ ! -f "$PEERS_DIR/lib.sh" ]; then
  common="$(git -C "$HERE" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)"
  [ -n "$common" ] && PEERS_DIR="$(dirname "$common")/../shared/peers"
fi
if [ ! -f "$PEERS_DIR/lib.sh" ]; then
  echo "peers.sh: no lib.sh in $PEERS_DIR (set SHELLWIRE_PEERS_DIR)" >&2
  exit 2
fi
# shellcheck source=/dev/null
source "$PEERS_DIR/lib.sh"

cmd="${1:-}"
case "$cmd" in
  start)
    command -v "$SSHD" >/dev/null 2>&1 || [ -x "$SSHD" ] || { echo "peers.sh: $SSHD not installed" >&2; exit 3; }
    command -v ssh >/dev/null 2>&1 || { echo "peers.sh: ssh client not installed" >&2; exit 3; }
    pidf="$A/sshd-main.pid"
    started=1
    if [ -f "$pidf" ] && alive "$(cat "$pidf" 2>/dev/null)"; then started=0; fi
    setup_keys_and_configs >&2 || { echo "peers.sh: setup_keys_and_configs failed" >&2; exit 4; }
    start_sshd main "$A/sshd_config" "$SSH_PORT" >&2 || { echo "peers.sh: start_sshd failed" >&2; exit 4; }
    pid="$(cat "$pidf" 2>/dev/null || true)"
    # Prove key auth works before anyone measures it.
    if ! $SSH 127.0.0.1 true </dev/null >&2; then
      echo "peers.sh: sshd started (pid $pid) but '$SSH 127.0.0.1 true' failed" >&2
      [ "$started" = 1 ] && stop_pid "$pid" && rm -f "$pidf"
      exit 5
    fi
    echo "SSH=$SSH"
    echo "SSHD_PID=$pid"
    echo "STARTED=$started"
    ;;
  stop)
    pid="${2:-}"
    [ -n "$pid" ] || { echo "usage: peers.sh stop PID" >&2; exit 2; }
    stop_pid "$pid"
    pidf="$A/sshd-main.pid"
    if [ -f "$pidf" ] && [ "$(cat "$pidf" 2>/dev/null)" = "$pid" ]; then rm -f "$pidf"; fi
    ;;
  fanout-start)
    dir="${2:-}"
    [ -n "$dir" ] && [ -d "$dir" ] || { echo "usage: peers.sh fanout-start DIR PORT..." >&2; exit 2; }
    shift 2
    command -v "$SSHD" >/dev/null 2>&1 || [ -x "$SSHD" ] || { echo "peers.sh: $SSHD not installed" >&2; exit 3; }
    setup_keys_and_configs >&2 || { echo "peers.sh: setup_keys_and_configs failed" >&2; exit 4; }
    hostpub="$(cut -d' ' -f1,2 "$A/ssh_host_ed25519_key.pub")"
    : >"$dir/known_hosts"
    pids=()
    i=0
    for port in "$@"; do
      i=$((i + 1))
      mkdir -p "$dir/h$i"
      echo "[127.0.0.1]:$port $hostpub" >>"$dir/known_hosts"
      # lib.sh's fan-out config (same key, same settings), on this port, with its pid file here.
      sed -e "s/^Port .*/Port $port/" -e "s|^PidFile .*|PidFile $dir/sshd-h$i.pid|" "$A/sshd_fan${FAN_FIRST}_config" >"$dir/sshd-h$i.config"
      echo "ForceCommand internal-sftp -d $dir/h$i" >>"$dir/sshd-h$i.config"
      $SSHD -t -f "$dir/sshd-h$i.config" || { echo "peers.sh: sshd config $dir/sshd-h$i.config invalid" >&2; for p in "${pids[@]}"; do stop_pid "$p"; done; exit 4; }
      $SSHD -f "$dir/sshd-h$i.config" -E "$dir/sshd-h$i.log"
      for _ in $(seq 1 50); do [ -s "$dir/sshd-h$i.pid" ] && break; sleep 0.1; done
      pids+=("$(cat "$dir/sshd-h$i.pid" 2>/dev/null)")
    done
    for port in "$@"; do
      wait_port "$port" || { for p in "${pids[@]}"; do stop_pid "$p"; done; exit 4; }
    done
    echo "SSH_OPTS=-F $SSHCFG -o UserKnownHostsFile=$dir/known_hosts"
    echo "PIDS=${pids[*]}"
    ;;
  fanout-stop)
    shift
    # All at once (one by one, stop_pid's 5 s wait each adds up), and a zombie counts as
    # stopped: killed sshd's are reparented to an init that reaps them only later.
    running() { [ -e "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
    for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 50); do
      left=0
      for pid in "$@"; do running "$pid" && left=1; done
      [ "$left" = 0 ] && break
      sleep 0.1
    done
    for pid in "$@"; do running "$pid" && kill -9 "$pid" 2>/dev/null; done
    true
    ;;
  *)
    echo "usage: peers.sh start | stop PID | fanout-start | fanout-stop PID..." >&2
    exit 2
    ;;
esac
