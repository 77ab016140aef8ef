#!/usr/bin/env bash
# Prove the set-up on a machine that has nothing: build a minimal Debian root with debootstrap,
# clone this checkout into it, and there, with a clean environment, run the README's two
# commands as a new user would:
#   1. bash scripts/run.sh     sets up only what the app needs; the app must report ready
#   2. bash scripts/test.sh    sets up the rest and runs the whole suite
#   3. both again: each must be fast and install nothing
# Usage (as root):  bash scripts/fresh-root.sh [--suite bookworm|trixie] [--keep] [-- PYTEST ARGS]
#   --suite   the Debian release (default bookworm, Debian 12)
#   --keep    leave the root in place (its path is printed) instead of removing it
# The root gets the host's package-client configuration only (apt sources and apt.conf.d, the
# extra CA certificates, pip.conf, resolv.conf): no packages, caches or Python from the host.
# /proc, /sys, /dev, /dev/pts and /dev/shm are bind-mounted for the run and unmounted whatever
# happens. Needs: root, network access to Debian's and PyPI's archives, ~3 GB in /var/tmp.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUITE=bookworm
KEEP=0
PYTEST_ARGS=()
while (($#)); do
  case "$1" in
    --suite) SUITE="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --) shift; PYTEST_ARGS=("$@"); break ;;
    *) echo "fresh-root: unknown option $1" >&2; exit 2 ;;
  esac
done
if [[ $(id -u) -ne 0 ]]; then
  echo "fresh-root: run as root (debootstrap, chroot and mounts need it)" >&2
  exit 2
fi
say() { printf 'fresh-root: [%4ds] %s\n' "$SECONDS" "$*" >&2; }

if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

# The mirror the host's apt uses (first "URIs:" of a deb822 file, or a one-line "deb" entry).
MIRROR="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
          awk '/^URIs:/ && $2 ~ /debian\/?$/ { print $2; exit }')"
[[ -n "$MIRROR" ]] || MIRROR="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
          awk '$1 == "deb" && $2 ~ /debian\/?$/ { print $2; exit }')"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

FRESH="$(mktemp -d /var/tmp/mailcore-fresh-root.XXXXXX)"
chmod 755 "$FRESH"  # a root directory, as on a real machine (apt drops to the _apt user)
MOUNTS=()

still_mounted() { awk -v r="$FRESH" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts; }

cleanup() {
  local rc=$?
  set +e
  # anything still running in the root (a keyring daemon, a virtual screen, the app)
  for p in /proc/[0-9]*; do
    [[ "$(readlink "$p/root" 2>/dev/null)" == "$FRESH" ]] && kill -9 "${p#/proc/}" 2>/dev/null
  done
  sleep 0.2
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}"
  done
  # whatever the run mounted inside (e.g. a nested /proc), deepest first
  while read -r m; do umount -l "$m"; done < <(still_mounted | sort -r)
  if [[ -n "$(still_mounted)" ]]; then
    echo "fresh-root: still mounted, $FRESH left in place:" >&2
    still_mounted >&2
  elif ((KEEP)); then
    echo "fresh-root: the root is kept at $FRESH" >&2
  else
    rm -rf --one-file-system "$FRESH"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "debootstrap --variant=minbase $SUITE from $MIRROR into $FRESH"
if ! debootstrap --variant=minbase "$SUITE" "$FRESH" "$MIRROR" >"$FRESH.log" 2>&1; then
  tail -30 "$FRESH.log" >&2
  rm -f "$FRESH.log"
  echo "fresh-root: debootstrap failed (log above)" >&2
  exit 1
fi
rm -f "$FRESH.log"

say "package-client configuration from the host"
# apt: the host's sources (re-pointed at this suite when it differs) and its apt.conf.d
rm -f "$FRESH/etc/apt/sources.list"
mkdir -p "$FRESH/etc/apt/sources.list.d" "$FRESH/etc/apt/apt.conf.d"
host_suite="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
  [[ -f "$f" ]] || continue
  dest="$FRESH${f}"
  if [[ -n "$host_suite" && "$host_suite" != "$SUITE" ]]; then
    sed "s/\b$host_suite\b/$SUITE/g" "$f" >"$dest"
  else
    cp "$f" "$dest"
  fi
done
cp -a /etc/apt/apt.conf.d/. "$FRESH/etc/apt/apt.conf.d/" 2>/dev/null || true
# extra CA certificates (the ca-certificates package, installed by bootstrap, takes them in)
if [[ -d /usr/local/share/ca-certificates ]]; then
  mkdir -p "$FRESH/usr/local/share/ca-certificates"
  cp -a /usr/local/share/ca-certificates/. "$FRESH/usr/local/share/ca-certificates/"
fi
# pip's configuration, wherever the host keeps it
for f in /etc/pip.conf /etc/xdg/pip /root/.config/pip /root/.pip; do
  if [[ -e "$f" ]]; then
    mkdir -p "$FRESH$(dirname "$f")"
    cp -a "$f" "$FRESH$f"
  fi
done
cp -L /etc/resolv.conf "$FRESH/etc/resolv.conf"
# What Debian's installer (and every container image) writes, and debootstrap does not: without
# it "localhost" does not resolve.
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$FRESH/etc/hosts"
# As in a container: apt installs services without starting them.
printf '#!/bin/sh\nexit 101\n' >"$FRESH/usr/sbin/policy-rc.d"
chmod 755 "$FRESH/usr/sbin/policy-rc.d"

for m in /proc /sys /dev /dev/pts /dev/shm; do
  mkdir -p "$FRESH$m"
  mount --bind "$m" "$FRESH$m"
  MOUNTS+=("$FRESH$m")
done

say "cloning $ROOT into the root"
git clone -q --no-hardlinks "$ROOT" "$FRESH/root/mailcore"

# A clean environment, as a new user's login shell would have.
in_root() {
  chroot "$FRESH" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    bash -c "cd /root/mailcore && $1"
}
# The app, on the virtual screen run.sh starts, told to quit once it is ready.
# The first run sets everything up from nothing, so it gets longer than the later ones.
run_app() { in_root "MAILGUI_EXIT_WHEN_READY=1 timeout $1 bash scripts/run.sh" 2>&1; }

say "1/4 bash scripts/run.sh (the app's set-up only)"
start=$SECONDS
out="$(run_app 900)" || { echo "$out" >&2; echo "fresh-root: run.sh failed" >&2; exit 1; }
grep -q "mailgui: ready" <<<"$out" || { echo "$out" >&2; echo "fresh-root: the app did not report ready" >&2; exit 1; }
say "    the app is ready, $((SECONDS - start)) s after a set-up from nothing"
if in_root "test -e .venv/bin/pytest || test -d .venv/django-mail-tests ||
           dpkg-query -W -f='\${db:Status-Abbrev}' gnome-keyring 2>/dev/null | grep -q ^ii"; then
  echo "fresh-root: run.sh installed what only the tests need" >&2
  exit 1
fi

say "2/4 bash scripts/test.sh ${PYTEST_ARGS[*]:-}"
start=$SECONDS
quoted="$(printf ' %q' "${PYTEST_ARGS[@]}")"
in_root "bash scripts/test.sh${PYTEST_ARGS:+$quoted}"
say "    the suite passed, $((SECONDS - start)) s with its set-up"

say "3/4 bash scripts/run.sh again: fast, installs nothing"
start=$SECONDS
out="$(run_app 60)" || { echo "$out" >&2; echo "fresh-root: the second run.sh failed" >&2; exit 1; }
grep -q "mailgui: ready" <<<"$out" || { echo "$out" >&2; echo "fresh-root: the app did not report ready" >&2; exit 1; }
if grep "bootstrap:" <<<"$out"; then
  echo "fresh-root: the second run.sh set something up again" >&2
  exit 1
fi
say "    ready in $((SECONDS - start)) s"

say "4/4 the test set-up again: fast, installs nothing"
start=$SECONDS
out="$(in_root "bash scripts/bootstrap.sh --test" 2>&1)"
if [[ -n "$out" ]]; then
  echo "$out" >&2
  echo "fresh-root: the second set-up was not silent" >&2
  exit 1
fi
say "    nothing to do, $((SECONDS - start)) s"
say "passed on a fresh Debian $SUITE root"
