#!/usr/bin/env bash
# Installs the Debian packages pinnace's tests and demo need; the one list of them.
#
# Why: `make demo`, `make test` and CI (.ci/run) must work on a fresh Debian 12 (or similar)
# machine with only a Docker engine, without the user installing anything by hand. All three
# call this script, so the list below is the only copy.
#
# How: each package is checked with dpkg-query; a machine that has everything installs
# nothing and prints nothing. What is missing is installed with one `apt-get update` and one
# `apt-get install`: directly as root, else through `sudo -n` (never a password prompt); where
# neither works the script stops with one sentence naming the command to run.
#
#   install-deps.sh            install what is missing
#   install-deps.sh --dry-run  print the commands it would run, run none (exit 0)
#
# Environment: PY (python3) is the interpreter the Makefile builds the venv with.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# What the project needs, one package a line (add yours here, with why).
packages=(
  haproxy         # the master's load balancer (tests, demo-local)
  busybox-static  # pinnace/httpd, the 2 MB test image (compose/images/build.sh)
  debootstrap     # Debian base images without a registry (compose/images/build.sh)
  ca-certificates # https mirrors for apt and debootstrap
  make            # the entry point
  curl            # the demo fetches its page through the load balancer
  etcd-server     # --store etcd: the HA tests run real etcd members
  dnsmasq-base    # each agent's cluster DNS for its pods (the binary only: no system service)
  iproute2        # the agent's local routes for cluster IPs and its DNS address (ip route)
  mount           # losetup: claims of an enforced size are loop-mounted files
  e2fsprogs       # mkfs.ext4, resize2fs, e2fsck for those claim files
  nftables        # nft: the node proxy's kernel NAT rules for UDP Services
  conntrack       # the node proxy deletes UDP flows of gone endpoints (conntrack -D)
)
# Needed only where the machine lacks what they provide.
command -v python3 >/dev/null || packages+=(python3)
# Compose: Docker's own plugin (`docker compose`) does; else Debian's docker-compose.
docker compose version >/dev/null 2>&1 || packages+=(docker-compose)

dry_run=0
case "${1:-}" in
--dry-run) dry_run=1 ;;
"") ;;
*)
  echo "install-deps: unknown argument $1 (use --dry-run or nothing)" >&2
  exit 2
  ;;
esac

# Debian's python3 makes venvs only with python3-venv. The repository's working venv, if
# any, proves it is not needed; otherwise try one.
venv_works() {
  [[ -x .venv/bin/python ]] && .venv/bin/python -c '' 2>/dev/null && return 0
  local probe ok=0
  probe=$(mktemp -d "${TMPDIR:-/tmp}/pinnace-venv-probe.XXXXXX")
  "${PY:-python3}" -m venv "$probe/venv" >/dev/null 2>&1 || ok=1
  rm -rf "$probe"
  return $ok
}
venv_works || packages+=(python3-venv)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
((${#missing[@]})) || exit 0

install=(apt-get install -y -q --no-install-recommends "${missing[@]}")
if [[ $(id -u) == 0 ]]; then
  as=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as=(sudo -n)
else
  echo "install-deps: pinnace needs ${missing[*]}, and this user can install nothing (not root, no sudo without a password): run \`sudo apt-get update && sudo ${install[*]}\` as an administrator, then this command again." >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}${as:+ (with sudo)}"
run() {
  if ((dry_run)); then
    echo "install-deps: would run: $*"
  else
    "$@"
  fi
}
run "${as[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
run "${as[@]}" env DEBIAN_FRONTEND=noninteractive "${install[@]}"
