#!/usr/bin/env bash
# Run a command as the tests run: a throwaway HOME and XDG folders, Qt
# offscreen, and a real Secret Service keyring (gnome-keyring, unlocked with a
# throwaway password) on a private D-Bus session. Nothing touches your own
# keyring, config or drafts.   Usage: scripts/sandbox.sh COMMAND [ARGS...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MAILCORE_VENV:-$ROOT/.venv}"
export PATH="$VENV/bin:$PATH"
# Packaging tests install into clean venvs: let them reuse the real pip cache.
export MAILCORE_PIP_CACHE="${PIP_CACHE_DIR:-${HOME:-/root}/.cache/pip}"
SANDBOX="$(mktemp -d /tmp/mailcore-sandbox.XXXXXX)"
trap 'rm -rf "$SANDBOX"' EXIT
mkdir -p "$SANDBOX"/{home,config,data,cache,runtime,dbus}
chmod 700 "$SANDBOX/runtime"
export HOME="$SANDBOX/home" XDG_CONFIG_HOME="$SANDBOX/config" XDG_DATA_HOME="$SANDBOX/data"
export XDG_CACHE_HOME="$SANDBOX/cache" XDG_RUNTIME_DIR="$SANDBOX/runtime"
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}" PYTHONDONTWRITEBYTECODE=1
export MAILCORE_TEST_KEYRING=secret-service
# The keyring daemon's own account of how each of its runs ended ("received signal",
# "dbus connection closed", an exit status), for the tests' summary to show.
export MAILCORE_KEYRING_LOG="$SANDBOX/keyring.log"
export GNOME_KEYRING_CONTROL="$XDG_RUNTIME_DIR/keyring"

# The daemon, in the foreground of a small script that records how it ended. D-Bus starts it
# (the bus below knows it as the Secret Service before the system's own, locked, start), so
# should it ever end, the next keyring call starts it again, unlocked with the same password.
cat >"$SANDBOX/dbus/keyring" <<KEYRING
#!/usr/bin/env bash
log="$MAILCORE_KEYRING_LOG"
say() { echo "\$(date +%T.%N | cut -c1-12) \$*" 2>/dev/null >>"\$log"; }
say "started (pid \$\$)"
set +e
printf throwaway | G_MESSAGES_DEBUG=all gnome-keyring-daemon --foreground --unlock \\
  --components=secrets &> >(grep --line-buffered -v -E '^\\(gnome-keyring-daemon:[0-9]+\\): [A-Za-z-]+-DEBUG' |
                            while IFS= read -r line; do say "\$line"; done)
status=\$?
say "ended, exit status \$status\$( ((status > 128)) && echo " (signal \$((status - 128)))")"
KEYRING
chmod 755 "$SANDBOX/dbus/keyring"
printf '[D-BUS Service]\nName=org.freedesktop.secrets\nExec=%s\n' "$SANDBOX/dbus/keyring" \
  >"$SANDBOX/dbus/org.freedesktop.secrets.service"
cat >"$SANDBOX/dbus/session.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <servicedir>$SANDBOX/dbus</servicedir>
  <include>/usr/share/dbus-1/session.conf</include>
</busconfig>
CONF

dbus-run-session --config-file="$SANDBOX/dbus/session.conf" -- bash -c '
  set -e
  # start it now (and wait for it), not at the first test that needs it
  dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.StartServiceByName string:org.freedesktop.secrets uint32:0 >/dev/null
  "$@"
' sandbox "$@"
