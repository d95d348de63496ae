#!/usr/bin/env bash
# Thin wrapper around ../shared/peers/lib.sh for bench/run.ts.
#
#   bash bench/peers.sh start      -> starts (or reuses) the private sshd on 127.0.0.1:2222
#                                     and prints KEY=VALUE lines: SSH, SSHD_PID, STARTED (1 if
#                                     this call started it, 0 if it was already running).
#   bash bench/peers.sh stop PID   -> stops that sshd by PID (only if it is still the one in
#                                     the pid file) and removes the pid file.
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
  *)
    echo "usage: peers.sh start | stop PID" >&2
    exit 2
    ;;
esac
