#!/usr/bin/env bash
# scripts/install-deps.sh: installs the Debian 12 packages Postern needs to build, test and benchmark.
# Installs only what is missing; runs apt-get update once before the first install.
set -euo pipefail
pkgs=(
  build-essential cmake g++ clang libclang-rt-14-dev clang-format ccache
  libasio-dev libfmt-dev libssl-dev libcrypt-dev libpam0g-dev libargon2-dev libgtest-dev libgmock-dev zlib1g-dev
  libunbound-dev dns-root-data
  python3 python3-pytest python3-aiosmtpd python3-openssl python3-dnslib python3-dkim
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
# PAM service of Postern's system-user logins (auth_pam_service), as Dovecot's package installs its own.
if [ ! -e /etc/pam.d/postern ]; then
  echo "install-deps: installing /etc/pam.d/postern"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  printf '#%%PAM-1.0\n# Postern (IMAP, POP3, SMTP AUTH) logins of system users\n@include common-auth\n@include common-account\n' |
    $sudo tee /etc/pam.d/postern >/dev/null
fi
# Node.js and the npm packages pinned in tests/e2e/js/package-lock.json (imapflow, for
# tests/e2e/test_imap_imapflow.py; nodemailer, for tests/e2e/test_tls_clients.py).
# Node from Debian (apt) only when no node/npm is installed at all.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  node_pkgs=()
  command -v node >/dev/null || node_pkgs+=(nodejs)
  command -v npm >/dev/null || node_pkgs+=(npm)
  echo "install-deps: installing ${node_pkgs[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${node_pkgs[@]}"
fi
js_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/e2e/js"
# Also when package-lock.json changed since the last install (a package was added): npm writes
# node_modules/.package-lock.json on every install.
if { [ ! -d "$js_dir/node_modules" ] || [ "$js_dir/package-lock.json" -nt "$js_dir/node_modules/.package-lock.json" ]; } &&
  command -v npm >/dev/null; then
  echo "install-deps: npm ci in $js_dir"
  npm ci --prefix "$js_dir" --no-audit --no-fund
fi
