#!/usr/bin/env bash
# Prints the path of a promtool for tests/alerts.rs (`promtool check rules`, `promtool test
# rules` on packaging/prometheus/). A promtool on PATH is used as it is; else the one from
# Debian's `prometheus` package, unpacked into <repo>/target/tools/promtool (apt-get download +
# dpkg-deb -x). The package is not installed: its postinst would start a Prometheus server
# (/etc/init.d/prometheus on a machine without systemd), and only promtool is needed.
# Exits non-zero with a message when it cannot get one.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
if command -v promtool >/dev/null 2>&1; then
  command -v promtool
  exit 0
fi
dir=$repo/target/tools/promtool
bin=$dir/promtool
mkdir -p "$dir"
exec 8>"$dir.lock"
flock 8
if [ ! -x "$bin" ]; then
  t0=$(date +%s)
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  apt-cache show prometheus >/dev/null 2>&1 || apt-get update -qq >&2
  (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root prometheus >&2) ||
    { echo "promtool.sh: apt-get download prometheus failed (Debian's archive reachable?)" >&2; exit 1; }
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
  install -m 755 "$tmp/x/usr/bin/promtool" "$bin.new"
  mv "$bin.new" "$bin"
  echo "promtool.sh: promtool from $(basename "$tmp"/prometheus_*.deb) in $(($(date +%s) - t0)) s" >&2
fi
"$bin" --version >/dev/null 2>&1 || { echo "promtool.sh: $bin does not run" >&2; exit 1; }
printf '%s\n' "$bin"
