#!/usr/bin/env bash
# Many small OpenSSH servers on 127.0.0.1 for fleet benchmarks: COUNT ports from FIRST, 16 ports per
# sshd process (the most ListenAddress lines one sshd takes), key-only, quiet logs. Each port is its own
# host to a client (its own known_hosts line); what separates the hosts on disk is the directory each
# deploy gets, not the server. Nothing here touches sshd.sh's servers or its env file.
# The login user is `atomkit-fleet` (created if missing: a system user, shell /bin/sh, an empty home
# under the base dir, no password), not root: every exec and SFTP start runs the login shell, and a
# heavy rc file (root's may run `pyenv init`, ~0.3 s) would be measured instead of the deploy. Files
# the hosts write must belong to it (the caller chowns its host dirs).
#   sshd-many.sh start FIRST COUNT   start (fails if a port is taken); prints KEY=VALUE lines
#   sshd-many.sh stop                stop the sshd this script started (only those: pid file + config path)
#   sshd-many.sh pids                pids of the listeners (their reaped session children count in cutime)
# Base dir: $ATOMKIT_FLEET_DIR, default /tmp/atomkit-fleet-sshd.
set -euo pipefail

BASE="${ATOMKIT_FLEET_DIR:-/tmp/atomkit-fleet-sshd}"
SSHD=/usr/sbin/sshd
PER=16
USER_NAME=atomkit-fleet

log() { echo "sshd-many.sh: $*" >&2; }

# Pid of the listener of group dir $1, if it runs and is ours.
our_pid() {
  local dir="$1" pid
  [ -f "$dir/sshd.pid" ] || return 1
  pid="$(cat "$dir/sshd.pid")"
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$dir/sshd_config" || return 1
  echo "$pid"
}

stop_all() {
  local d pid
  for d in "$BASE"/group-*; do
    [ -d "$d" ] || continue
    if pid="$(our_pid "$d")"; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
      [ -d "/proc/$pid" ] && kill -9 "$pid" 2>/dev/null
      log "stopped ${d##*/} (pid $pid)"
    fi
    rm -f "$d/sshd.pid"
  done
  return 0
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  local first="$1" count="$2" g p dir last pid
  if ! [[ "$first" =~ ^[0-9]+$ && "$count" =~ ^[0-9]+$ ]] || [ "$first" -lt 1024 ] || [ "$count" -lt 1 ] ||
    [ $((first + count - 1)) -gt 65535 ]; then
    log "bad range '$first' '$count' (want FIRST >= 1024, COUNT >= 1, last port <= 65535)"; exit 2
  fi
  [ -x "$SSHD" ] && [ -x /usr/lib/openssh/sftp-server ] || { log "needs openssh-server (bash scripts/testbed/sshd.sh installs it)"; exit 1; }
  for ((p = first; p < first + count; p++)); do
    if port_busy "$p"; then log "port $p is in use"; exit 1; fi
  done
  mkdir -p "$BASE/client" "$BASE/home" /run/sshd && chmod 700 "$BASE/client" && chmod 755 /run/sshd "$BASE"
  if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --system --shell /bin/sh --home-dir "$BASE/home" --no-create-home "$USER_NAME"
    log "created user $USER_NAME (shell /bin/sh, home $BASE/home)"
  fi
  # '!' (locked) is refused by sshd without PAM even for keys; '*' allows keys, never a password
  usermod -p '*' -d "$BASE/home" "$USER_NAME"
  chown "$USER_NAME" "$BASE/home"
  [ -f "$BASE/client/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C atomkit-fleet -f "$BASE/client/id_ed25519"
  : > "$BASE/known_hosts.tmp"
  for ((g = 0; g * PER < count; g++)); do
    dir="$BASE/group-$g"
    # the session reads authorized_keys as the login user
    mkdir -p "$dir" && chmod 755 "$dir"
    [ -f "$dir/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C "fleet-$g" -f "$dir/ssh_host_ed25519_key"
    cp "$BASE/client/id_ed25519.pub" "$dir/authorized_keys" && chmod 644 "$dir/authorized_keys"
    last=$((first + (g + 1) * PER - 1))
    [ "$last" -lt $((first + count - 1)) ] || last=$((first + count - 1))
    {
      for ((p = first + g * PER; p <= last; p++)); do echo "ListenAddress 127.0.0.1:$p"; done
      cat <<EOF
HostKey $dir/ssh_host_ed25519_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
AllowUsers $USER_NAME
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
PrintLastLog no
UseDNS no
# a fleet controller opens many connections at once: never refuse one for being early
MaxStartups 1000
MaxSessions 100
LogLevel ERROR
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
    } > "$dir/sshd_config"
    "$SSHD" -t -f "$dir/sshd_config"
    rm -f "$dir/sshd.pid"
    "$SSHD" -f "$dir/sshd_config" -E "$dir/sshd.log"
    for ((p = first + g * PER; p <= last; p++)); do
      echo "[127.0.0.1]:$p $(cut -d' ' -f1,2 "$dir/ssh_host_ed25519_key.pub")" >> "$BASE/known_hosts.tmp"
    done
  done
  mv "$BASE/known_hosts.tmp" "$BASE/known_hosts"
  # up when every port answers
  for ((p = first; p < first + count; p++)); do
    for _ in $(seq 1 100); do port_busy "$p" && break; sleep 0.1; done
    port_busy "$p" || { log "port $p did not come up"; stop_all; exit 1; }
  done
  log "started $count ports $first-$((first + count - 1)) on $g sshd processes"
  echo "ATOMKIT_FLEET_FIRST_PORT=$first"
  echo "ATOMKIT_FLEET_COUNT=$count"
  echo "ATOMKIT_FLEET_USER=$USER_NAME"
  echo "ATOMKIT_FLEET_KEY=$BASE/client/id_ed25519"
  echo "ATOMKIT_FLEET_KNOWN_HOSTS=$BASE/known_hosts"
}

case "${1:-}" in
  start) [ $# -eq 3 ] || { log "usage: sshd-many.sh start FIRST COUNT"; exit 2; }; start "$2" "$3" ;;
  stop) stop_all ;;
  pids) for d in "$BASE"/group-*; do [ -d "$d" ] && our_pid "$d" || true; done ;;
  *) log "usage: sshd-many.sh start FIRST COUNT | stop | pids"; exit 2 ;;
esac
