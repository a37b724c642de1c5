#!/bin/sh
# Postern vs Dovecot 2.3, IMAP side by side on the same messages (see bench/README.md).  Run as root:
#   bench/imap_vs_dovecot.sh                 # full run: 10,000 messages, 1,000 idle connections
#   bench/imap_vs_dovecot.sh --quick         # smoke test, under a minute
#   bench/imap_vs_dovecot.sh --help
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
if [ "$(id -u)" != 0 ]; then
	echo "run as root (a private Dovecot instance is started)" >&2
	exit 1
fi
if [ -z "${POSTERN_BIN:-}" ] && [ ! -x "$repo/build/postern" ]; then
	echo "building Postern (cmake --build build --target postern) ..." >&2
	cmake --build "$repo/build" -j1 --target postern >&2
fi
[ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/imap ] || {
	echo "Dovecot not found: apt-get install dovecot-imapd dovecot-pop3d" >&2
	exit 1
}
# many simultaneous connections: raise the open files limit as far as allowed (the script raises it more)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec /usr/bin/python3 "$here/imap_vs_dovecot.py" "$@"
