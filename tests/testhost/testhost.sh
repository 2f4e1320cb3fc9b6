#!/usr/bin/env bash
# testhost.sh - a real systemd + D-Bus + dockerd host for tests, booted from a
# Debian root filesystem with systemd-nspawn. See README.md beside this file.
#
#   testhost.sh deps                      install systemd-container + debootstrap
#   testhost.sh pkgdeps                   install what the .deb test needs; print cargo-deb's path
#   testhost.sh promparser                pip install prometheus-client (pinned) into
#                                         target/tools/python; print that directory
#   testhost.sh lintdeps                  install ansible-lint (PyPI, pinned) in a venv under
#                                         target/tools; print its path
#   testhost.sh rootfs [SUITE]            build/reuse the pristine cached tree (SUITE: bookworm,
#                                         trixie, forky or docker29: forky's tree with docker-ce's
#                                         dockerd 29 and units from $TESTHOST_DOCKER29)
#   testhost.sh boot NAME [SUITE]         boot a fresh copy, wait for docker, print init PID
#   testhost.sh exec NAME CMD...          run CMD inside (exit code propagated)
#   testhost.sh cp NAME SRC DEST          copy a host file/dir to DEST (path inside)
#   testhost.sh image NAME [TAG]          (re)import /opt/testimage as TAG (busybox:local)
#   testhost.sh pid NAME                  print the init PID of a running container
#   testhost.sh shutdown NAME             power off, wait, remove the run tree
#
# Environment:
#   TESTHOST_CACHE           cache dir (default: <repo>/target/testhost)
#   TESTHOST_MIRROR          Debian mirror (default: first URIs: of the host's debian.sources)
#   TESTHOST_EXTRA_PACKAGES  extra packages installed with apt inside the rootfs
#                            (e.g. "ansible-core"); part of the cache stamp
#   TESTHOST_BOOT_TIMEOUT    seconds to wait for docker.service (default 90)
#   TESTHOST_DOCKER29        the folder with dockerd.xz, docker.service and docker.socket of
#                            docker 29 as docker-ce lays it out (default: <repo>/../shared/docker29)
set -euo pipefail

# Bump when the rootfs recipe changes: cached trees with another stamp are rebuilt.
RECIPE_VERSION=4

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
CACHE=${TESTHOST_CACHE:-$REPO_ROOT/target/testhost}
DOCKER29=${TESTHOST_DOCKER29:-$REPO_ROOT/../shared/docker29}
BOOT_TIMEOUT=${TESTHOST_BOOT_TIMEOUT:-90}
CGROUP_CONTROLLERS=(cpu cpuacct cpuset memory devices freezer blkio pids)
BASE_PACKAGES=systemd,systemd-sysv,dbus,docker.io,busybox-static,passwd,login,iproute2,iptables,procps,python3
IMAGE_APPLETS=(sh id cat ls sleep touch stat mkdir echo env true false grep rm wc head readlink whoami)
# Units that only slow the boot down or make no sense in a throw-away test host.
MASK_UNITS=(
  apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer
  fstrim.timer systemd-tmpfiles-clean.timer console-getty.service
  e2scrub_reap.service systemd-networkd-wait-online.service
  systemd-modules-load.service # fails on trixie (CAP_SYS_MODULE but no modules): "degraded"
)
# A clean, predictable environment for commands run inside the container.
INNER_ENV=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  HOME=/root LANG=C.UTF-8 TERM=dumb SYSTEMD_PAGER=cat PAGER=cat)

log() { printf 'testhost: %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2; }

need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root"; }

check_name() {
  [[ ${1:-} =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$ ]] || die "bad container NAME '${1:-}' (use [A-Za-z0-9_-])"
}

check_suite() {
  case ${1:-} in bookworm | trixie | forky | docker29) ;; *) die "unsupported SUITE '${1:-}' (bookworm, trixie, forky or docker29)" ;; esac
}

run_dir() { printf '%s/run-%s' "$CACHE" "$1"; }

# Hierarchies in which systemd-nspawn creates its supervisor/ and payload/ cgroups
# next to itself: the named v1 "systemd" one and the cgroup2 one (hybrid: unified/).
tracking_hierarchies() {
  local h
  for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
    [ -f "$h/cgroup.procs" ] && printf '%s\n' "$h"
  done
  return 0
}

# Per-container cgroup in those hierarchies (else two containers share /payload).
cgroup_dirs() {
  local h
  for h in $(tracking_hierarchies); do printf '%s/testhost/%s\n' "$h" "$1"; done
}

remove_cgroups() {
  local d
  for d in $(cgroup_dirs "$1"); do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  return 0
}

mirror() {
  if [ -n "${TESTHOST_MIRROR:-}" ]; then
    printf '%s\n' "$TESTHOST_MIRROR"
    return
  fi
  local uri=""
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    # First stanza's URIs: (first one if several).
    uri=$(awk 'tolower($1) == "uris:" { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb"{ for (i=2;i<=NF;i++) if ($i ~ /^https?:/) { print $i; exit } }' /etc/apt/sources.list)
  fi
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

# ---------------------------------------------------------------- deps
deps_missing() {
  command -v systemd-nspawn >/dev/null 2>&1 || printf '%s\n' systemd-container
  command -v debootstrap >/dev/null 2>&1 || printf '%s\n' debootstrap
  command -v nsenter >/dev/null 2>&1 || printf '%s\n' util-linux
  command -v flock >/dev/null 2>&1 || printf '%s\n' util-linux
  return 0
}

# apt_ensure WHAT MISSING_FN: apt-get installs the packages that MISSING_FN (prints names)
# reports missing.
apt_ensure() {
  local what=$1 missing_fn=$2
  local missing=()
  mapfile -t missing < <("$missing_fn" | sort -u)
  if [ ${#missing[@]} -eq 0 ]; then
    log "$what present"
    return
  fi
  # Serialize installers (parallel test processes): apt's own lock fails instead of waiting.
  # flock is in util-linux, which is Essential in Debian; do without it if it is missing.
  local locked=""
  if command -v flock >/dev/null 2>&1; then
    mkdir -p "$CACHE"
    exec 7>"$CACHE/deps.lock"
    flock 7
    locked=1
    mapfile -t missing < <("$missing_fn" | sort -u)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # stdout goes to stderr: `boot` captures the stdout of `rootfs`.
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  else
    log "$what present (installed by another process)"
  fi
  if [ -n "$locked" ]; then
    flock -u 7
    exec 7>&-
  fi
}

cmd_deps() {
  need_root
  apt_ensure deps deps_missing
}

# ---------------------------------------------------------------- promparser
# What tests/real_host_prometheus.rs needs on the host to parse `status --prometheus` output
# with a real parser: prometheus-client (pinned) from PyPI, installed with pip into
# <repo>/target/tools/python (`pip install --target`, nothing in the system's Python), for the
# python3 on PATH. Prints that directory (for PYTHONPATH). python3-pip comes from apt when
# that python3 has no pip.
PROMETHEUS_CLIENT_VERSION=0.26.0

promparser_missing() {
  command -v python3 >/dev/null 2>&1 || printf '%s\n' python3
  python3 -m pip --version >/dev/null 2>&1 || printf '%s\n' python3-pip
  return 0
}

promparser_ok() {
  [ -d "$1/prometheus_client" ] &&
    [ "$(PYTHONPATH=$1 python3 -c 'import importlib.metadata as m; print(m.version("prometheus_client"))' 2>/dev/null)" = "$PROMETHEUS_CLIENT_VERSION" ]
}

cmd_promparser() {
  need_root
  local dir=$TOOLS/python
  if promparser_ok "$dir"; then
    log "prometheus-client $PROMETHEUS_CLIENT_VERSION present"
  else
    apt_ensure promparser promparser_missing
    mkdir -p "$TOOLS"
    exec 8>"$TOOLS/python.lock"
    flock 8
    if promparser_ok "$dir"; then
      log "prometheus-client $PROMETHEUS_CLIENT_VERSION present (installed by another process)"
    else
      local t0
      t0=$(now_ms)
      log "installing prometheus-client $PROMETHEUS_CLIENT_VERSION from PyPI into $dir (pip)"
      rm -rf "$dir"
      if ! python3 -m pip install --quiet --disable-pip-version-check --no-input --root-user-action=ignore \
        --no-deps --target "$dir" "prometheus-client==$PROMETHEUS_CLIENT_VERSION" >&2; then
        die "pip install --target $dir prometheus-client==$PROMETHEUS_CLIENT_VERSION failed (PyPI reachable?)"
      fi
      promparser_ok "$dir" || die "$dir does not hold prometheus-client $PROMETHEUS_CLIENT_VERSION for $(command -v python3)"
      log "prometheus-client $PROMETHEUS_CLIENT_VERSION installed in $(($(now_ms) - t0)) ms"
    fi
    flock -u 8
    exec 8>&-
  fi
  printf '%s\n' "$dir"
}

# ---------------------------------------------------------------- pkgdeps
# What tests/real_host_package.rs (and README "Packaging") needs on the host to build and check
# the .deb: cargo-deb builds it (the pinned version, installed in <repo>/target/tools; any other
# cargo-deb on PATH is not used), with dpkg-shlibdeps (dpkg-dev) for Depends and strip (binutils); lintian checks it; man-db's
# `man -w` resolves its man pages.
CARGO_DEB_VERSION=3.8.0
TOOLS=$REPO_ROOT/target/tools

pkgdeps_missing() {
  command -v dpkg-shlibdeps >/dev/null 2>&1 || printf '%s\n' dpkg-dev
  command -v strip >/dev/null 2>&1 || printf '%s\n' binutils
  command -v lintian >/dev/null 2>&1 || printf '%s\n' lintian
  command -v man >/dev/null 2>&1 || printf '%s\n' man-db
  return 0
}

cargo_deb_ok() {
  [ -x "$TOOLS/bin/cargo-deb" ] &&
    [ "$("$TOOLS/bin/cargo-deb" --version 2>/dev/null)" = "cargo-deb $CARGO_DEB_VERSION" ]
}

cmd_pkgdeps() {
  need_root
  apt_ensure pkgdeps pkgdeps_missing
  if cargo_deb_ok; then
    log "cargo-deb $CARGO_DEB_VERSION present"
  else
    # Serialized like apt: two `cargo install`s into one root would race.
    mkdir -p "$TOOLS"
    exec 8>"$TOOLS/cargo-deb.lock"
    flock 8
    if cargo_deb_ok; then
      log "cargo-deb $CARGO_DEB_VERSION present (installed by another process)"
    else
      local t0
      t0=$(now_ms)
      log "installing cargo-deb $CARGO_DEB_VERSION into $TOOLS (cargo install, a few minutes)"
      # Its own target dir: the running `cargo test` may hold the repo's (or CARGO_TARGET_DIR's).
      rm -rf "$TOOLS/build"
      if ! "${CARGO:-cargo}" install cargo-deb --version "$CARGO_DEB_VERSION" --locked --force \
        --quiet --root "$TOOLS" --target-dir "$TOOLS/build" >&2; then
        die "cargo install cargo-deb --version $CARGO_DEB_VERSION --locked --root $TOOLS failed"
      fi
      rm -rf "$TOOLS/build"
      cargo_deb_ok || die "$TOOLS/bin/cargo-deb does not report version $CARGO_DEB_VERSION"
      log "cargo-deb $CARGO_DEB_VERSION installed in $(($(now_ms) - t0)) ms"
    fi
    flock -u 8
    exec 8>&-
  fi
  printf '%s\n' "$TOOLS/bin/cargo-deb"
}

# ---------------------------------------------------------------- lintdeps
# What tests/ansible_lint.rs needs: ansible-lint from PyPI (pinned; it brings its own
# ansible-core) in a venv in <repo>/target/tools/ansible-lint, made with Debian's python3
# (python3-venv installed with apt when `python3 -m venv` cannot work).
ANSIBLE_LINT_VERSION=26.10.1
LINT_VENV=$TOOLS/ansible-lint

lintdeps_missing() {
  command -v python3 >/dev/null 2>&1 || printf '%s\n' python3
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || printf '%s\n' python3-venv
  return 0
}

ansible_lint_ok() {
  [ -x "$LINT_VENV/bin/ansible-lint" ] &&
    "$LINT_VENV/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("ansible-lint") != sys.argv[1])' \
      "$ANSIBLE_LINT_VERSION" >/dev/null 2>&1
}

cmd_lintdeps() {
  need_root
  apt_ensure lintdeps lintdeps_missing
  if ansible_lint_ok; then
    log "ansible-lint $ANSIBLE_LINT_VERSION present"
  else
    mkdir -p "$TOOLS"
    exec 8>"$TOOLS/ansible-lint.lock"
    flock 8
    if ansible_lint_ok; then
      log "ansible-lint $ANSIBLE_LINT_VERSION present (installed by another process)"
    else
      local t0
      t0=$(now_ms)
      log "installing ansible-lint $ANSIBLE_LINT_VERSION into $LINT_VENV (pip, about a minute)"
      rm -rf "$LINT_VENV"
      python3 -m venv "$LINT_VENV" >&2 || die "python3 -m venv $LINT_VENV failed"
      if ! "$LINT_VENV/bin/pip" install --quiet --disable-pip-version-check \
        "ansible-lint==$ANSIBLE_LINT_VERSION" >&2; then
        die "pip install ansible-lint==$ANSIBLE_LINT_VERSION into $LINT_VENV failed"
      fi
      ansible_lint_ok || die "$LINT_VENV/bin/ansible-lint is not version $ANSIBLE_LINT_VERSION"
      log "ansible-lint $ANSIBLE_LINT_VERSION installed in $(($(now_ms) - t0)) ms"
    fi
    flock -u 8
    exec 8>&-
  fi
  printf '%s\n' "$LINT_VENV/bin/ansible-lint"
}

# ---------------------------------------------------------------- rootfs
# Packages installed with apt inside the tree of SUITE, beyond debootstrap's.
suite_packages() {
  case $1 in
  # trixie and forky ship the docker CLI as a package of its own.
  trixie | forky) printf '%s\n' docker-cli ;;
  # The fleet tests run Ansible playbooks inside the bookworm host (local connection); the
  # role's ansible.builtin.apt needs python3-apt (the host has no network to fetch it).
  bookworm) printf '%s\n' ansible-core python3-apt ;;
  esac
}

rootfs_stamp() {
  if [ "$1" = docker29 ]; then
    # forky's stamp and what was laid over it (the files' sizes and mtimes: hashing 20 MB at
    # every boot would cost more than it tells). Not the folder's path: two checkouts (git
    # worktrees) name the same folder differently, and would each rebuild the shared tree.
    local f files=""
    for f in dockerd.xz docker.service docker.socket; do
      files="$files$f:$(stat -c '%s:%Y' "$DOCKER29/$f" 2>/dev/null),"
    done
    printf 'docker29 over %s files=%s\n' "$(rootfs_stamp forky)" "${files%,}"
    return
  fi
  # bookworm's list is in its stamp since python3-apt joined it (trixie's and forky's trees,
  # unchanged, keep their stamps).
  local inside=""
  [ "$1" = bookworm ] && inside=" inside=$(suite_packages "$1" | paste -sd, -)"
  printf 'recipe=%s suite=%s packages=%s extra=%s%s\n' \
    "$RECIPE_VERSION" "$1" "$BASE_PACKAGES" "${TESTHOST_EXTRA_PACKAGES:-}" "$inside"
}

rootfs_dir() { printf '%s/rootfs-%s' "$CACHE" "$1"; }

rootfs_ok() {
  local dir=$1 suite=$2
  [ -f "$dir/.testhost-stamp" ] && [ "$(cat "$dir/.testhost-stamp")" = "$(rootfs_stamp "$suite")" ]
}

# Install packages with apt inside the (not booted) tree.
chroot_apt_install() {
  local dir=$1 aptlog=$2
  shift 2
  # policy-rc.d keeps maintainer scripts from starting services in the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod 755 "$dir/usr/sbin/policy-rc.d"
  if ! {
    chroot "$dir" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C \
      apt-get update -q &&
      chroot "$dir" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C \
        apt-get install -y -q -o Dpkg::Use-Pty=0 --no-install-recommends "$@"
  } >"$aptlog" 2>&1; then
    tail -n 30 "$aptlog" >&2
    die "apt-get install $* inside the tree failed (full log: $aptlog)"
  fi
  chroot "$dir" apt-get clean
  rm -f "$dir/usr/sbin/policy-rc.d"
}

# The tiny image tree at /opt/testimage (imported as busybox:local after boot).
build_test_image_tree() {
  local dir=$1 img=$1/opt/testimage applet
  [ -x "$dir/bin/busybox" ] || die "busybox-static missing from rootfs"
  mkdir -p "$img/bin" "$img/etc" "$img/tmp" "$img/root"
  chmod 1777 "$img/tmp"
  cp "$dir/bin/busybox" "$img/bin/busybox"
  for applet in "${IMAGE_APPLETS[@]}"; do
    ln -sf busybox "$img/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$img/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$img/etc/group"
}

# Puts the finished tree TMP in place as DEST, replacing a stale one: renamed away first, so
# DEST is never half removed.
# Copies the cached tree of suite $1 ($2) to $3 holding that tree's lock shared, so that a
# rebuild (which holds it exclusively to swap the tree in) never swaps it out mid-copy.
copy_rootfs() {
  local rc=0
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE/rootfs-$1.lock"
    flock -s 9
  fi
  cp -a --reflink=auto "$2" "$3" || rc=$?
  exec 9>&-
  return $rc
}

install_tree() {
  local tmp=$1 dest=$2
  if [ -e "$dest" ]; then
    mv -T "$dest" "$tmp.old"
    mv -T "$tmp" "$dest"
    rm -rf --one-file-system "$tmp.old"
  else
    mv -T "$tmp" "$dest"
  fi
}

# docker 29 as docker-ce installs it (../shared/docker29/README.md): forky's tree, dockerd 29 at
# /usr/bin/dockerd, docker-ce's units in /usr/lib/systemd/system, Debian's dockerd and its
# /etc/default/docker gone. Fresh, it keeps images in the containerd image store.
build_docker29() {
  local dest=$1 tmp=$2 forky f
  for f in dockerd.xz docker.service docker.socket; do
    [ -f "$DOCKER29/$f" ] || die "docker29: $DOCKER29/$f is missing (set TESTHOST_DOCKER29 to the folder holding dockerd.xz, docker.service and docker.socket)"
  done
  forky=$(cmd_rootfs forky)
  log "docker29: forky's tree with $DOCKER29"
  copy_rootfs forky "$forky" "$tmp"
  xz -dc "$DOCKER29/dockerd.xz" >"$tmp/usr/bin/dockerd" || die "docker29: cannot unpack $DOCKER29/dockerd.xz"
  chmod 755 "$tmp/usr/bin/dockerd"
  rm -f "$tmp/usr/sbin/dockerd" "$tmp/etc/default/docker"
  cp "$DOCKER29/docker.service" "$DOCKER29/docker.socket" "$tmp/usr/lib/systemd/system/"
  chmod 644 "$tmp/usr/lib/systemd/system/docker.service" "$tmp/usr/lib/systemd/system/docker.socket"
  rootfs_stamp docker29 >"$tmp/.testhost-stamp"
  install_tree "$tmp" "$dest"
}

build_rootfs() {
  local suite=$1 dest=$2 tmp=$3
  if [ "$suite" = docker29 ]; then
    build_docker29 "$dest" "$tmp"
    return
  fi
  local mirror_uri
  mirror_uri=$(mirror)
  log "debootstrap $suite from $mirror_uri into $tmp"
  # debootstrap wants a fresh directory; its log ends up in $tmp/debootstrap/debootstrap.log on failure.
  # bookworm's debootstrap has no script for forky (Debian testing): sid's works for it.
  local script=()
  [ "$suite" = forky ] && script=(/usr/share/debootstrap/scripts/sid)
  if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" "$suite" "$tmp" "$mirror_uri" \
    "${script[@]}" >"$CACHE/debootstrap-$suite.log" 2>&1; then
    tail -n 30 "$CACHE/debootstrap-$suite.log" >&2 || true
    [ -f "$tmp/debootstrap/debootstrap.log" ] && tail -n 30 "$tmp/debootstrap/debootstrap.log" >&2
    die "debootstrap failed (full log: $CACHE/debootstrap-$suite.log)"
  fi

  # The mirror may be a frozen snapshot: do not reject its old Release files.
  printf 'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n' \
    >"$tmp/etc/apt/apt.conf.d/99testhost"
  # Every boot copies the tree: keep it small. debootstrap leaves its .debs (~110 MB)
  # in the apt cache; docs, man pages and translations are useless here (~60 MB).
  rm -f "$tmp/var/cache/apt/archives/"*.deb
  rm -rf "$tmp/usr/share/doc/"* "$tmp/usr/share/man/"* "$tmp/usr/share/info/"* "$tmp/usr/share/locale/"*
  cat >"$tmp/etc/dpkg/dpkg.cfg.d/01testhost-nodoc" <<'DPKG'
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
DPKG

  local extra=()
  mapfile -t extra < <(suite_packages "$suite")
  if [ -n "${TESTHOST_EXTRA_PACKAGES:-}" ]; then
    local -a words
    read -r -a words <<<"$TESTHOST_EXTRA_PACKAGES"
    extra+=("${words[@]}")
  fi
  if [ ${#extra[@]} -gt 0 ]; then
    log "apt-get install inside the tree: ${extra[*]}"
    chroot_apt_install "$tmp" "$CACHE/apt-inside-$suite.log" "${extra[@]}"
  fi

  local unit
  for unit in "${MASK_UNITS[@]}"; do
    ln -sfn /dev/null "$tmp/etc/systemd/system/$unit"
  done
  # A stable, empty machine-id: systemd (with nspawn's help) makes a transient one at boot.
  : >"$tmp/etc/machine-id"
  build_test_image_tree "$tmp"
  rm -rf "$tmp/var/lib/apt/lists/"* "$tmp/var/cache/apt/"*.bin
  rootfs_stamp "$suite" >"$tmp/.testhost-stamp"

  install_tree "$tmp" "$dest"
}

cmd_rootfs() {
  need_root
  local suite=${1:-bookworm}
  check_suite "$suite"
  command -v debootstrap >/dev/null 2>&1 || cmd_deps
  mkdir -p "$CACHE"
  local dest
  dest=$(rootfs_dir "$suite")
  if rootfs_ok "$dest" "$suite"; then
    printf '%s\n' "$dest"
    return
  fi
  # Serialize builders; re-check after getting the lock.
  exec 8>"$CACHE/rootfs-$suite.lock"
  flock 8
  if ! rootfs_ok "$dest" "$suite"; then
    local tmp
    rm -rf --one-file-system "$CACHE/.rootfs-$suite.tmp."* 2>/dev/null || true
    tmp="$CACHE/.rootfs-$suite.tmp.$$"
    # shellcheck disable=SC2064 # expand $tmp now
    trap "rm -rf --one-file-system '$tmp'" EXIT
    local t0=$SECONDS
    build_rootfs "$suite" "$dest" "$tmp"
    trap - EXIT
    log "rootfs $suite built in $((SECONDS - t0)) s: $(du -sh "$dest" | cut -f1)"
  fi
  flock -u 8
  exec 8>&-
  printf '%s\n' "$dest"
}

# ---------------------------------------------------------------- process lookup
# PIDs of systemd-nspawn processes running the tree run-NAME (pid files may be lost).
nspawn_pids() {
  local dir want p args
  want=$(run_dir "$1")
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = systemd-nspawn ] || continue
    args=$(tr '\0' '\n' <"$p/cmdline" 2>/dev/null) || continue
    dir=$(printf '%s\n' "$args" | sed -n '/^-D$/{n;p;q}')
    [ "$dir" = "$want" ] && printf '%s\n' "${p#/proc/}"
  done
  return 0
}

children_of() {
  local parent=$1 p ppid
  for p in /proc/[0-9]*; do
    ppid=$(awk '{ sub(/^.*\) /, ""); print $2 }' "$p/stat" 2>/dev/null) || continue
    [ "$ppid" = "$parent" ] && printf '%s\n' "${p#/proc/}"
  done
  return 0
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# Init PID of a running container NAME, or fail.
init_pid() {
  local name=$1 pid
  pid=$(cat "$CACHE/run-$name.pid" 2>/dev/null) || die "container $name is not running (no $CACHE/run-$name.pid)"
  alive "$pid" || die "container $name is not running (init PID $pid is gone)"
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd ] || die "PID $pid is not the container's systemd"
  printf '%s\n' "$pid"
}

inside() {
  local pid=$1
  shift
  nsenter -t "$pid" -a -- "${INNER_ENV[@]}" "$@"
}

# ---------------------------------------------------------------- boot
stop_container() {
  local name=$1 leftover=${2:-} dir pids pid init waited
  dir=$(run_dir "$name")
  pids=$(nspawn_pids "$name")
  if [ -n "$pids" ]; then
    [ -n "$leftover" ] && log "stopping a leftover container $name"
    init=$(cat "$CACHE/run-$name.pid" 2>/dev/null || true)
    for pid in $pids; do
      if ! alive "$init" || [ "$(awk '{ sub(/^.*\) /, ""); print $2 }' "/proc/$init/stat" 2>/dev/null)" != "$pid" ]; then
        init=$(children_of "$pid" | head -n 1)
      fi
      if alive "$init"; then
        timeout 10 nsenter -t "$init" -a -- "${INNER_ENV[@]}" systemctl poweroff --no-block >/dev/null 2>&1 || true
      else
        kill -TERM "$pid" 2>/dev/null || true
      fi
    done
    waited=0
    while [ -n "$(nspawn_pids "$name")" ] && [ $waited -lt 300 ]; do
      sleep 0.1
      waited=$((waited + 1))
    done
    pids=$(nspawn_pids "$name")
    if [ -n "$pids" ]; then
      log "container $name did not power off within 30 s: killing it"
      for pid in $pids; do
        for init in $(children_of "$pid"); do kill -KILL "$init" 2>/dev/null || true; done
        kill -KILL "$pid" 2>/dev/null || true
      done
      waited=0
      while [ -n "$(nspawn_pids "$name")" ] && [ $waited -lt 100 ]; do
        sleep 0.1
        waited=$((waited + 1))
      done
      [ -z "$(nspawn_pids "$name")" ] || die "could not stop systemd-nspawn for $name"
    fi
  fi
  rm -f "$CACHE/run-$name.pid" "$CACHE/run-$name.nspawn.pid"
  remove_cgroups "$name"
  STOPPED_MS=$(now_ms)
  if [ -e "$dir" ]; then
    rm -rf --one-file-system "$dir"
  fi
}

boot_fail() {
  local name=$1
  shift
  log "error: $*"
  log "---- last lines of $CACHE/run-$name.log ----"
  tail -n 40 "$CACHE/run-$name.log" >&2 2>/dev/null || true
  local init
  init=$(cat "$CACHE/run-$name.pid" 2>/dev/null || true)
  if alive "$init"; then
    log "---- systemctl --failed / docker status inside ----"
    timeout 10 nsenter -t "$init" -a -- "${INNER_ENV[@]}" systemctl --failed --no-legend >&2 2>&1 || true
    timeout 10 nsenter -t "$init" -a -- "${INNER_ENV[@]}" systemctl status --no-pager -n 20 docker.service >&2 2>&1 || true
  fi
  exit 1
}

cmd_boot() {
  need_root
  local name=${1:-} suite=${2:-bookworm}
  check_name "$name"
  check_suite "$suite"
  command -v systemd-nspawn >/dev/null 2>&1 || cmd_deps
  local src dir logf
  src=$(cmd_rootfs "$suite")
  dir=$(run_dir "$name")
  logf="$CACHE/run-$name.log"

  stop_container "$name" leftover

  local t0 t_cp t_init t_docker
  t0=$(now_ms)
  copy_rootfs "$suite" "$src" "$dir"
  t_cp=$(now_ms)

  # systemd >= 256 (forky: 262) refuses cgroup v1: boot it on the unified hierarchy, where
  # docker 28 needs bpf (device cgroup programs) and no v1 controller is bound in.
  local unified=""
  case $suite in forky | docker29) unified=1 ;; esac
  local filter='keyctl add_key request_key'
  [ -n "$unified" ] && filter+=' bpf'
  local args=(--register=no --keep-unit -D "$dir" -b --private-network --capability=all
    "--system-call-filter=$filter" --console=read-only -M "$name")
  local c
  if [ -z "$unified" ]; then
    for c in "${CGROUP_CONTROLLERS[@]}"; do
      [ -d "/sys/fs/cgroup/$c" ] && args+=("--bind=/sys/fs/cgroup/$c:/run/hostcg/$c")
    done
  fi

  local cg
  for cg in $(cgroup_dirs "$name"); do mkdir -p "$cg"; done
  # The subshell moves itself into the per-container cgroups, then becomes nspawn.
  # setsid: own session, so a CI job's process group signals don't reach it by surprise.
  # stdin /dev/null and output to the log: no TTY needed, and $(testhost.sh boot) returns.
  (
    for cg in $(cgroup_dirs "$name"); do printf '%s\n' "$BASHPID" >"$cg/cgroup.procs"; done
    if [ -n "$unified" ]; then export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1; fi
    exec setsid systemd-nspawn "${args[@]}"
  ) </dev/null >"$logf" 2>&1 &
  local npid=$!
  sleep 0.05
  # setsid execs in place when not a group leader; if it forked, find the real nspawn.
  if [ "$(cat "/proc/$npid/comm" 2>/dev/null)" != systemd-nspawn ]; then
    sleep 0.2
    npid=$(nspawn_pids "$name" | head -n 1)
    [ -n "$npid" ] || boot_fail "$name" "systemd-nspawn did not start"
  fi
  printf '%s\n' "$npid" >"$CACHE/run-$name.nspawn.pid"

  # The container's init is nspawn's child; wait until it has exec'ed systemd.
  local init="" _
  for _ in $(seq 1 200); do
    alive "$npid" || boot_fail "$name" "systemd-nspawn exited during start"
    for c in $(children_of "$npid"); do
      if [ "$(cat "/proc/$c/comm" 2>/dev/null)" = systemd ]; then
        init=$c
        break
      fi
    done
    [ -n "$init" ] && break
    sleep 0.05
  done
  [ -n "$init" ] || boot_fail "$name" "no container init found under nspawn PID $npid"
  printf '%s\n' "$init" >"$CACHE/run-$name.pid"
  t_init=$(now_ms)

  # nspawn mounts the v1 controllers read-only: put the host's writable ones over them.
  local mounts=""
  if [ -z "$unified" ]; then
    for c in "${CGROUP_CONTROLLERS[@]}"; do
      [ -d "/sys/fs/cgroup/$c" ] && mounts+="mount --bind /run/hostcg/$c /sys/fs/cgroup/$c && "
    done
  fi
  nsenter -t "$init" -m -- sh -c "${mounts}true" || boot_fail "$name" "cgroup bind mounts failed"

  local deadline=$((SECONDS + BOOT_TIMEOUT)) state=""
  while :; do
    alive "$npid" || boot_fail "$name" "systemd-nspawn exited during boot"
    state=$(timeout 10 nsenter -t "$init" -a -- "${INNER_ENV[@]}" systemctl is-active docker.service 2>/dev/null || true)
    [ "$state" = active ] && break
    [ "$state" = failed ] && boot_fail "$name" "docker.service failed"
    [ $SECONDS -lt $deadline ] || boot_fail "$name" "docker.service not active after ${BOOT_TIMEOUT} s (state: ${state:-unknown})"
    sleep 0.2
  done
  t_docker=$(now_ms)
  import_image "$init" busybox:local || boot_fail "$name" "docker import of /opt/testimage failed"
  log "container $name up (init PID $init) in $(($(now_ms) - t0)) ms:" \
    "copy $((t_cp - t0)), init $((t_init - t_cp)), docker active $((t_docker - t_init))," \
    "import $(($(now_ms) - t_docker))"
  printf '%s\n' "$init"
}

# ---------------------------------------------------------------- image/exec/cp
import_image() {
  local init=$1 tag=${2:-busybox:local} _
  # dockerd answers a moment after systemd reports it active on some restarts: retry briefly.
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    # shellcheck disable=SC2016 # $1 is expanded by the inner sh
    if inside "$init" sh -c 'tar -C /opt/testimage -c . | docker import - "$1"' sh "$tag" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
  # shellcheck disable=SC2016 # $1 is expanded by the inner sh
  inside "$init" sh -c 'tar -C /opt/testimage -c . | docker import - "$1"' sh "$tag" >/dev/null
}

cmd_image() {
  need_root
  local name=${1:-} tag=${2:-busybox:local} init
  check_name "$name"
  init=$(init_pid "$name")
  import_image "$init" "$tag"
}

cmd_exec() {
  need_root
  local name=${1:-} init
  check_name "$name"
  shift
  [ $# -gt 0 ] || die "usage: testhost.sh exec NAME CMD..."
  init=$(init_pid "$name")
  local rc=0
  inside "$init" "$@" || rc=$?
  exit "$rc"
}

cmd_cp() {
  need_root
  local name=${1:-} src=${2:-} dest=${3:-} init
  check_name "$name"
  if [ -z "$src" ] || [ -z "$dest" ]; then die "usage: testhost.sh cp NAME SRC DEST"; fi
  [[ $dest == /* ]] || die "DEST must be an absolute path inside the container"
  [ -e "$src" ] || die "no such file: $src"
  init=$(init_pid "$name")
  # Go through the container's own mount namespace, so DEST may be on its /run or /tmp tmpfs.
  if [ -d "$src" ]; then
    inside "$init" mkdir -p "$dest"
    tar -C "$src" -c . | nsenter -t "$init" -a -- "${INNER_ENV[@]}" tar -C "$dest" -x --no-same-owner
  else
    local mode
    mode=$(stat -c %a "$src")
    # shellcheck disable=SC2016 # $1/$2 are expanded by the inner sh
    nsenter -t "$init" -a -- "${INNER_ENV[@]}" sh -c \
      'mkdir -p "$(dirname "$1")" && cat >"$1.testhost-tmp" && chmod "$2" "$1.testhost-tmp" && mv -f "$1.testhost-tmp" "$1"' \
      sh "$dest" "$mode" <"$src"
  fi
}

cmd_pid() {
  local name=${1:-}
  check_name "$name"
  init_pid "$name"
}

# ---------------------------------------------------------------- shutdown
cmd_shutdown() {
  need_root
  local name=${1:-}
  check_name "$name"
  local t0
  t0=$(now_ms)
  STOPPED_MS=$t0
  stop_container "$name"
  log "container $name shut down in $(($(now_ms) - t0)) ms:" \
    "poweroff $((STOPPED_MS - t0)), remove tree $(($(now_ms) - STOPPED_MS))"
}

main() {
  local cmd=${1:-}
  [ $# -gt 0 ] && shift
  case $cmd in
  deps) cmd_deps "$@" ;;
  pkgdeps) cmd_pkgdeps "$@" ;;
  promparser) cmd_promparser "$@" ;;
  lintdeps) cmd_lintdeps "$@" ;;
  rootfs) cmd_rootfs "$@" ;;
  boot) cmd_boot "$@" ;;
  exec) cmd_exec "$@" ;;
  cp) cmd_cp "$@" ;;
  image) cmd_image "$@" ;;
  pid) cmd_pid "$@" ;;
  shutdown) cmd_shutdown "$@" ;;
  -h | --help | help | "") usage ;;
  *) die "unknown command '$cmd' (try --help)" ;;
  esac
}

main "$@"
