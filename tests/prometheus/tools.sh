#!/usr/bin/env bash
# tests/prometheus/tools.sh [promtool|node_exporter]: prints the path of the tool for
# tests/alerts.rs (default promtool: `promtool check rules`, `promtool test rules` on
# packaging/prometheus/; node_exporter: its textfile collector's labels for the stale-file
# alert). One on PATH is used as it is; else the one from Debian's package (`prometheus`,
# `prometheus-node-exporter`), unpacked into <repo>/target/tools/<tool> (apt-get download +
# dpkg-deb -x). The packages are not installed: their postinst would start the services (with
# /etc/init.d scripts on a machine without systemd), and only the binaries are needed.
# Exits non-zero with a message when it cannot get one.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
tool=${1:-promtool}
case $tool in
  promtool) package=prometheus path=usr/bin/promtool names=(promtool) ;;
  node_exporter) package=prometheus-node-exporter path=usr/bin/prometheus-node-exporter names=(prometheus-node-exporter node_exporter) ;;
  *) echo "tools.sh: unknown tool $tool (promtool or node_exporter)" >&2; exit 2 ;;
esac
for n in "${names[@]}"; do
  if command -v "$n" >/dev/null 2>&1; then
    command -v "$n"
    exit 0
  fi
done
dir=$repo/target/tools/$tool
bin=$dir/$tool
mkdir -p "$dir"
exec 8>"$dir.lock"
flock 8
if [ ! -x "$bin" ]; then
  t0=$(date +%s)
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  apt-cache show "$package" >/dev/null 2>&1 || apt-get update -qq >&2
  (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "$package" >&2) ||
    { echo "tools.sh: apt-get download $package failed (Debian's archive reachable?)" >&2; exit 1; }
  dpkg-deb -x "$tmp/$package"_*.deb "$tmp/x"
  install -m 755 "$tmp/x/$path" "$bin.new"
  mv "$bin.new" "$bin"
  echo "tools.sh: $tool from $(basename "$tmp/$package"_*.deb) in $(($(date +%s) - t0)) s" >&2
fi
"$bin" --version >/dev/null 2>&1 || { echo "tools.sh: $bin does not run" >&2; exit 1; }
printf '%s\n' "$bin"
