#!/usr/bin/env bash
# selftest.sh [SUITE] - boots a test host with testhost.sh and checks that it
# gives a real systemd + D-Bus + dockerd, including userns-remap. Prints
# "N passed, N failed" and exits non-zero on any failure.
set -euo pipefail

SUITE=${1:-bookworm}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TH="$HERE/testhost.sh"
NAME=selftest-$SUITE
PASS=0
FAIL=0

ok() { PASS=$((PASS + 1)); printf 'ok   %s\n' "$1"; }
ko() { FAIL=$((FAIL + 1)); printf 'FAIL %s\n' "$1"; }
check() { # check DESC CMD... : passes when CMD succeeds
  local desc=$1
  shift
  if "$@"; then ok "$desc"; else ko "$desc"; fi
}
in_ct() { "$TH" exec "$NAME" "$@"; }
ms() { date +%s%3N; }

cleanup() { "$TH" shutdown "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT

"$TH" deps
t=$(ms)
"$TH" rootfs "$SUITE" >/dev/null
echo "time rootfs (build or reuse): $(($(ms) - t)) ms"

t=$(ms)
PID=$("$TH" boot "$NAME" "$SUITE")
echo "time boot to docker active + import: $(($(ms) - t)) ms (init PID $PID)"

check "systemd is running" test "$(in_ct systemctl is-system-running || true)" = running
check "exec propagates exit code" test "$(
  set +e
  in_ct sh -c 'exit 7'
  echo $?
)" = 7
check "docker run as root" test "$(in_ct docker run --rm --pull=never busybox:local id -u)" = 0

tmpf=$(mktemp)
printf '{"userns-remap":"default"}\n' >"$tmpf"
"$TH" cp "$NAME" "$tmpf" /etc/docker/daemon.json
rm -f "$tmpf"
check "cp into the container" in_ct grep -q userns-remap /etc/docker/daemon.json

t=$(ms)
in_ct systemctl restart docker
echo "time systemctl restart docker: $(($(ms) - t)) ms"
check "docker info lists userns" sh -c "'$TH' exec '$NAME' docker info --format '{{.SecurityOptions}}' | grep -q userns"
check "old image hidden after remap" test -z "$(in_ct docker images -q busybox:local)"
"$TH" image "$NAME"
check "remapped container still says uid 0" test "$(in_ct docker run --rm --pull=never busybox:local id -u)" = 0
in_ct docker run -d --name remapped --pull=never busybox:local sleep 120 >/dev/null
host_uid=$(ps -eo uid=,args= | awk '$2 == "sleep" && $3 == "120" { print $1; exit }')
check "host sees the remapped process as uid 100000 (got $host_uid)" test "$host_uid" = 100000
in_ct docker rm -f remapped >/dev/null
check "dockremap in /etc/subuid" in_ct grep -q '^dockremap:100000:65536$' /etc/subuid

check "system bus socket inside" in_ct test -S /run/dbus/system_bus_socket
check "busctl inside" sh -c "'$TH' exec '$NAME' busctl --no-pager list | grep -q org.freedesktop.systemd1"
if command -v busctl >/dev/null 2>&1; then
  state=$(DBUS_SYSTEM_BUS_ADDRESS="unix:path=/proc/$PID/root/run/dbus/system_bus_socket" \
    busctl --system get-property org.freedesktop.systemd1 /org/freedesktop/systemd1/unit/docker_2eservice \
    org.freedesktop.systemd1.Unit ActiveState 2>&1 || true)
  check "host busctl via /proc/PID/root bus socket (got $state)" test "$state" = 's "active"'
fi

trap - EXIT
t=$(ms)
"$TH" shutdown "$NAME"
echo "time shutdown: $(($(ms) - t)) ms"
check "run tree removed" test ! -e "${TESTHOST_CACHE:-$HERE/../../target/testhost}/run-$NAME"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
