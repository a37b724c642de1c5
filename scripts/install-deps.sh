#!/usr/bin/env bash
# scripts/install-deps.sh: installs the Debian 12 packages Postern needs to build, test and benchmark.
# Installs only what is missing; runs apt-get update once before the first install.
set -euo pipefail
pkgs=(
  build-essential cmake g++ clang libclang-rt-14-dev clang-format
  libasio-dev libfmt-dev libssl-dev libcrypt-dev libgtest-dev libgmock-dev zlib1g-dev
  python3 python3-pytest python3-aiosmtpd
  swaks postfix telnet curl
  dovecot-imapd dovecot-pop3d isync offlineimap3 fetchmail mutt
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  # postfix's package starts no daemon here: policy-rc.d forbids service starts during install.
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    echo 'exit 101' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
  [ "$made_policy" = 0 ] || $sudo rm -f /usr/sbin/policy-rc.d
fi
# mail_owner: the unprivileged user Postern's network-facing process runs as when started as root.
if ! getent passwd postern >/dev/null; then
  echo "install-deps: creating the system user postern (mail_owner)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin postern
fi
