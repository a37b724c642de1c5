#!/bin/sh
# Postern vs Postfix SMTP delivery throughput (see bench/README.md).  Run as root:
#   bench/smtp_vs_postfix.sh                 # full run: 10,000 messages per run
#   bench/smtp_vs_postfix.sh -m 500          # quick try
#   bench/smtp_vs_postfix.sh --help
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
if [ "$(id -u)" != 0 ]; then
	echo "run as root (a private Postfix instance is started)" >&2
	exit 1
fi
if [ -z "${POSTERN_BIN:-}" ] && [ ! -x "$repo/build/postern" ]; then
	echo "building Postern (make build) ..." >&2
	make -C "$repo" build >&2
fi
for tool in smtp-source postfix postconf; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "$tool not found: apt-get install postfix (smtp-source is in the postfix package)" >&2
		exit 1
	}
done
exec python3 "$here/smtp_vs_postfix.py" "$@"
