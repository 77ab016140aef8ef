#!/usr/bin/env bash
# Set up what the project needs on a Debian 12 or 13 machine, idempotently.
#   scripts/bootstrap.sh              what the app needs (scripts/run.sh)
#   scripts/bootstrap.sh --test       also what the test suite needs (scripts/test.sh)
#   BOOTSTRAP_BENCH=1 ...             also the benchmark extras (Python packages, and
#                                     xdotool and redis-server from Debian)
# Fast when everything is already there: apt is skipped when the packages are installed, pip
# when pyproject.toml has not changed and the wanted extras are in, and Django's mail tests
# are fetched once.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${MAILCORE_VENV:-$ROOT/.venv}"
FOR_TESTS=0
for arg in "$@"; do
  case "$arg" in
    --test) FOR_TESTS=1 ;;
    *) echo "bootstrap: unknown option $arg (try --test)" >&2; exit 2 ;;
  esac
done

# What the app needs
APT_PACKAGES=(
  # Qt offscreen and on X11 (xcb), fonts for readable windows
  libglib2.0-0 libgl1 libegl1 libfontconfig1 libxkbcommon0 libdbus-1-3
  libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0
  libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0
  libxcb-xfixes0 libxcb-xkb1 libxcb-sync1 libxcb-shm0 libx11-xcb1
  fonts-dejavu-core
  # Qt WebEngine (the HTML previews)
  libnss3 libnspr4 libxtst6 libasound2
  # run.sh on a machine without a display starts the window on a virtual screen
  xvfb xauth
  ca-certificates
  # the spam check: SpamAssassin's daemon, started by the app on loopback, and its client
  spamassassin spamd spamc
)
# What the tests add
TEST_PACKAGES=(
  # a real Secret Service keyring for the tests, on a private D-Bus
  dbus dbus-x11 gnome-keyring
  # unshare and ip: the test host in a private network namespace (tests/core)
  util-linux iproute2
  # git lists the files the wheel is built from; objdump, which PyInstaller needs to build
  # the bundle (tests/packaging)
  git binutils
  # desktop-file-validate and update-desktop-database (mailgui --install-desktop)
  desktop-file-utils
  # the DKIM tests: a DNS server on loopback for the keys (dnsmasq-base: the program without
  # the system service), and two other verifiers (OpenDKIM's and Perl's Mail::DKIM)
  dnsmasq-base opendkim-tools libmail-dkim-perl
  # SMTPUTF8 end to end: a private Postfix per test on loopback (never the system's); swaks,
  # to compare the mailcore command's swaks options with swaks itself
  postfix swaks
  # queued sending: a real Redis for the broker, started by the tests on loopback (never the
  # system's instance)
  redis-server
  # the local inbox's disk syncs, counted from the server's system calls (tests/gui)
  strace
)
((FOR_TESTS)) && APT_PACKAGES+=("${TEST_PACKAGES[@]}")
# What the benchmarks add (bench/run.sh): xdotool types into the window in the cold-start
# bench; Redis is the queue bench's broker (Postfix's smtp-sink/smtp-source: bench/run.sh)
BENCH_PACKAGES=(xdotool redis-server)
[[ "${BOOTSTRAP_BENCH:-0}" == 1 ]] && APT_PACKAGES+=("${BENCH_PACKAGES[@]}")

PY="${PYTHON:-python3}"
# Python with venv and pip (Debian splits them out of python3)
if ! command -v "$PY" >/dev/null || ! "$PY" -c "import ensurepip, venv" 2>/dev/null; then
  APT_PACKAGES+=(python3 python3-venv python3-pip)
  PY=python3
fi
# PyInstaller bundles Python's shared library, which Debian ships apart (libpython3.X)
if ((FOR_TESTS)) && command -v "$PY" >/dev/null; then
  libpython="$("$PY" -c 'import sysconfig as s, os
name = s.get_config_var("INSTSONAME") or ""
print("" if os.path.exists(os.path.join(s.get_config_var("LIBDIR") or "", name)) else
      "libpython%d.%d" % __import__("sys").version_info[:2])' 2>/dev/null || true)"
  [[ -n "$libpython" ]] && APT_PACKAGES+=("$libpython")
fi

missing=()
if command -v dpkg-query >/dev/null; then
  # Installed packages and what they provide (Debian 13 renamed some libraries, e.g.
  # libglib2.0-0t64 provides libglib2.0-0).
  declare -A have=()
  while read -r name provides; do
    have[$name]=1
    for p in ${provides//,/ }; do
      [[ "$p" == "("* || "$p" == *")" || "$p" == "="* ]] || have[$p]=1
    done
  done < <(dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Provides}\n' 2>/dev/null |
           awk '$1 == "ii" { $1 = ""; print }')
  for p in "${APT_PACKAGES[@]}"; do
    [[ -n "${have[$p]:-}" ]] || missing+=("$p")
  done
fi
if ((${#missing[@]})); then
  echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  if [[ " ${missing[*]} " == *" postfix "* ]]; then
    # only its programs, for the tests' private instances: no mail system is configured
    echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "bootstrap: creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
# Python packages come from pyproject.toml's extras: gui (PySide6 with WebEngine, keyring,
# aiosmtpd and the checks' lxml, tinycss2, dkimpy, dnspython, cryptography) and test (pytest
# and friends, Django, authlib for the OAuth server, celery[redis] for queued sending). npm is
# needed only by scripts/refresh_caniemail.sh, run by hand, which says how to get it.
extras="gui"
((FOR_TESTS)) && extras="$extras,test"
[[ "${BOOTSTRAP_BENCH:-0}" == 1 ]] && extras="$extras,bench"
stamp="$VENV/.mailcore-installed"
hash="$(sha256sum pyproject.toml | cut -c1-16)"
installed=""
if [[ -f "$stamp" ]]; then
  read -r stamp_hash stamp_extras <"$stamp" || true
  [[ "${stamp_hash:-}" == "$hash" ]] && installed="${stamp_extras:-}"
fi
need=0
for e in ${extras//,/ }; do
  [[ ",$installed," == *",$e,"* ]] || need=1
done
if ((need)); then
  # keep the extras already there, so run.sh after test.sh does not drop the test packages
  all="$(printf '%s\n' ${extras//,/ } ${installed//,/ } | sort -u | paste -sd, -)"
  echo "bootstrap: installing Python packages [$all]" >&2
  log="$(mktemp)"
  if ! { "$VENV/bin/python" -m pip install --upgrade pip &&
         "$VENV/bin/python" -m pip install -e ".[$all]"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "bootstrap: pip install failed (log above)" >&2
    exit 1
  fi
  rm -f "$log"
  echo "$hash $all" > "$stamp"
fi

# Django's own mail test suite (from the Django sdist on PyPI), run against
# mailcore by tests/compat. Only tests/mail is kept.
DJANGO_TESTS="$VENV/django-mail-tests"
if ((FOR_TESTS)) && [[ ! -f "$DJANGO_TESTS/.complete" ]]; then
  version="$("$VENV/bin/python" -c 'import django; print(django.__version__)')"
  tmp="$(mktemp -d)"
  echo "bootstrap: fetching Django $version's mail tests" >&2
  "$VENV/bin/python" -m pip download -q --no-deps --no-binary :all: "Django==$version" -d "$tmp" >/dev/null 2>&1
  rm -rf "$DJANGO_TESTS" && mkdir -p "$DJANGO_TESTS"
  tar -xzf "$tmp"/[Dd]jango-"$version".tar.gz -C "$tmp" --wildcards "*/tests/mail/*"
  mv "$tmp"/[Dd]jango-"$version"/tests/mail "$DJANGO_TESTS/mail"
  rm -rf "$tmp"
  touch "$DJANGO_TESTS/.complete"
fi
