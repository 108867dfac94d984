#!/usr/bin/env bash
# Builds the container images pinnace's tests and demo run, without a registry.
#
# Why: the machines this project runs on reach Debian's package mirror but no container
# registry, so `docker pull nginx:latest` fails. Every image is therefore made here from
# Debian's packages, and pulled instead only on a machine that can pull.
#
# How: each image name given on the command line is checked in the engine first. An image this
# script built carries the label pinnace.build-inputs (a hash of its recipe); it is kept while
# that label matches the current recipe, rebuilt when it does not, and always rebuilt with
# FORCE=1. Debian root filesystems come from `debootstrap --variant=minbase`, are trimmed and
# `docker import`ed once as a cached base (pinnace/debian-*:bookworm); the final images are
# small Dockerfiles FROM those bases, so a rebuild after a recipe change takes seconds.
#
#   build.sh nginx httpd pause  # what `make images` runs (pause: the pod sandbox holder)
#   build.sh redis            # the stateful example's image (the demo builds it on demand)
#   build.sh debian-python    # what `make images-base` runs (python3 + haproxy: the base for
#                             # pinnace's own image, compose/Dockerfile)
#   build.sh guestbook voting podinfo # stand-ins for the images of the real manifests'
#                             # guestbook, voting app and podinfo (tests/bench/apps.py;
#                             # standins/README.md)
#
# Environment: FORCE=1 rebuilds everything; PINNACE_PULL=0 never tries a pull;
# DEBIAN_MIRROR overrides the mirror read from /etc/apt/sources.list*.
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
suite=bookworm
recipe_version=1 # bump to rebuild every image this script makes, everywhere
step="starting"
workdir=""

say() { printf 'images: %s\n' "$*"; }
fail() {
  printf 'images: FAILED: %s\n' "$*" >&2
  exit 1
}
on_error() { printf 'images: FAILED while %s (see the output above)\n' "$step" >&2; }
trap on_error ERR

cleanup() {
  [[ -n "$workdir" && -d "$workdir" ]] || return 0
  # debootstrap mounts /proc and /sys in its target; never let rm walk into a mount.
  findmnt -rn -o TARGET | grep -F "$workdir" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf --one-file-system "$workdir"
}
trap cleanup EXIT

# --- engine helpers -------------------------------------------------------------------------

image_present() { docker image inspect "$1" >/dev/null 2>&1; }

image_label() {
  docker image inspect --format '{{index .Config.Labels "pinnace.build-inputs"}}' "$1" 2>/dev/null || true
}

# Decides whether $1 must be (re)built for recipe hash $2: absent, stale or FORCE=1.
# An image without our label was pulled (or made by someone else) and is kept as it is.
needs_build() {
  local tag=$1 inputs=$2 label
  [[ "${FORCE:-0}" == 1 ]] && return 0
  image_present "$tag" || return 0
  label=$(image_label "$tag")
  [[ "$label" == "<no value>" || -z "$label" || "$label" == "$inputs" ]] && return 1
  say "$tag was built from an older recipe: rebuilding"
  return 0
}

try_pull() {
  [[ "${PINNACE_PULL:-1}" == 0 ]] && return 1
  say "pulling $1"
  if timeout "${PULL_TIMEOUT:-120}" docker pull -q "$1" >/dev/null 2>&1; then
    say "pulled $1"
    return 0
  fi
  say "cannot pull $1: building it locally"
  return 1
}

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

new_workdir() {
  if [[ -z "$workdir" ]]; then
    workdir=$(mktemp -d "${TMPDIR:-/var/tmp}/pinnace-images.XXXXXX")
  fi
}

# Classic builder: BuildKit may try to resolve FROM images against a registry, and its CLI
# plugin (buildx) is not always installed. Output is shown only when the build fails.
docker_build() {
  local no_cache=()
  [[ "${FORCE:-0}" == 1 ]] && no_cache=(--no-cache)
  new_workdir
  if ! DOCKER_BUILDKIT=0 docker build "${no_cache[@]}" "$@" >"$workdir/build.log" 2>&1; then
    grep -v -e DEPRECATED -e 'legacy builder' -e 'BuildKit is currently' -e 'environment-variable' \
      "$workdir/build.log" | tail -n 20 >&2
    return 1
  fi
}

# --- Debian bases ---------------------------------------------------------------------------

# The Debian mirror apt already uses (deb822 *.sources or one-line *.list) for $suite; prints
# nothing when there is none.
debian_mirror() {
  if [[ -n "${DEBIAN_MIRROR:-}" ]]; then
    echo "${DEBIAN_MIRROR%/}"
    return
  fi
  local f url=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    url=$(awk -v suite="$suite" '
      BEGIN { RS = ""; FS = "\n" }
      {
        types = ""; uris = ""; suites = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          line = $i
          if (line ~ /^[ \t]*#/ || index(line, ":") == 0) continue
          key = tolower(substr(line, 1, index(line, ":") - 1))
          val = substr(line, index(line, ":") + 1)
          gsub(/^[ \t]+|[ \t]+$/, "", val)
          if (key == "types") types = val
          else if (key == "uris") uris = val
          else if (key == "suites") suites = val
          else if (key == "enabled") enabled = tolower(val)
        }
        if (enabled != "no" && (" " types " ") ~ / deb / && (" " suites " ") ~ (" " suite " ")) {
          split(uris, u, " "); print u[1]; exit
        }
      }' "$f")
    [[ -n "$url" ]] && break
  done
  if [[ -z "$url" ]]; then
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [[ -f "$f" ]] || continue
      url=$(awk -v suite="$suite" '
        $1 == "deb" {
          i = 2
          if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
          if ($(i + 1) == suite) { print $i; exit }
        }' "$f")
      [[ -n "$url" ]] && break
    done
  fi
  [[ -z "$url" ]] || echo "${url%/}"
}

# Trims what a container never reads: apt's downloads and lists, docs, man pages, locales.
trim_rootfs() {
  local root=$1
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
    "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
    "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/var/cache/debconf/*-old \
    "$root"/var/lib/dpkg/*-old "$root"/var/log/*.log "$root"/var/log/apt/*
  # Docker bind-mounts these at run time; the builder's own must not leak into the image.
  : >"$root/etc/hostname"
  rm -f "$root/etc/resolv.conf"
  : >"$root/etc/resolv.conf"
}

# build_debian_base TAG PACKAGES: debootstrap minbase + PACKAGES, trimmed, docker-imported.
build_debian_base() {
  local tag=$1 packages=$2 inputs mirror root log
  inputs=$(printf '%s %s %s %s\n' "$recipe_version" "$suite" "$packages" "$(declare -f trim_rootfs)" | sha256sum | cut -c1-16)
  if ! needs_build "$tag" "$inputs"; then
    say "$tag present"
    return
  fi
  command -v debootstrap >/dev/null || fail "debootstrap is not installed (apt-get install debootstrap)"
  [[ $(id -u) == 0 ]] || fail "debootstrap needs root to build $tag"
  mirror=$(debian_mirror)
  [[ -n "$mirror" ]] || fail "no Debian $suite mirror in /etc/apt/sources.list*: set DEBIAN_MIRROR"
  new_workdir
  root="$workdir/${tag//[\/:]/_}"
  log="$workdir/debootstrap.log"
  step="debootstrapping $tag from $mirror (log: $log)"
  say "debootstrap $suite + $packages from $mirror (about a minute)"
  if ! debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    cp "$log" "${TMPDIR:-/var/tmp}/pinnace-debootstrap.log"
    fail "debootstrap of $tag from $mirror (log: ${TMPDIR:-/var/tmp}/pinnace-debootstrap.log)"
  fi
  trim_rootfs "$root"
  step="importing $tag"
  tar --numeric-owner -C "$root" -c . | docker import \
    --change "LABEL pinnace.build-inputs=$inputs" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    - "$tag" >/dev/null
  rm -rf --one-file-system "$root"
  say "built $tag ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%d MB", $1 / 1e6}'))"
}

# --- the images -----------------------------------------------------------------------------

build_nginx() {
  local tag=nginx:latest base=pinnace/debian-nginx-base:bookworm inputs
  local packages=nginx-light
  # Kept as soon as the tag is there (pulled or ours and current): no base needed then.
  inputs=$(hash_of "$here/nginx/Dockerfile" "$here/nginx/entrypoint.sh" "$here/nginx/default.conf" \
    <(echo "$recipe_version $packages"))
  if ! needs_build "$tag" "$inputs"; then
    say "$tag present"
    return
  fi
  try_pull "$tag" && return
  build_debian_base "$base" "$packages"
  step="building $tag"
  docker_build --build-arg "BASE=$base" --label "pinnace.build-inputs=$inputs" -t "$tag" "$here/nginx"
  say "built $tag"
}

build_httpd() {
  local tag=pinnace/httpd:latest busybox=/bin/busybox inputs ctx
  # Never pulled: a pinnace/* name on a public registry would be someone else's image.
  [[ -x "$busybox" ]] || fail "$busybox is missing (apt-get install busybox-static)"
  if ldd "$busybox" >/dev/null 2>&1; then
    fail "$busybox is dynamically linked: install busybox-static for the FROM scratch image"
  fi
  inputs=$(hash_of "$here/httpd/Dockerfile" "$here/httpd/entrypoint.sh" "$busybox" \
    <(echo "$recipe_version"))
  if ! needs_build "$tag" "$inputs"; then
    say "$tag present"
    return
  fi
  step="building $tag"
  new_workdir
  ctx="$workdir/httpd"
  mkdir -p "$ctx"
  cp "$here/httpd/Dockerfile" "$here/httpd/entrypoint.sh" "$ctx/"
  cp "$busybox" "$ctx/busybox"
  docker_build --label "pinnace.build-inputs=$inputs" -t "$tag" "$ctx"
  say "built $tag ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.1f MB", $1 / 1e6}'))"
}

build_pause() {
  # The holder of a pod's network namespace (agent/runtime/sandbox.py, the agent's
  # --pod-sandbox): busybox's sh waiting for a signal. Never pulled, as pinnace/httpd.
  local tag=pinnace/pause:latest busybox=/bin/busybox inputs ctx
  [[ -x "$busybox" ]] || fail "$busybox is missing (apt-get install busybox-static)"
  if ldd "$busybox" >/dev/null 2>&1; then
    fail "$busybox is dynamically linked: install busybox-static for the FROM scratch image"
  fi
  inputs=$(hash_of "$here/pause/Dockerfile" "$busybox" <(echo "$recipe_version"))
  if ! needs_build "$tag" "$inputs"; then
    say "$tag present"
    return
  fi
  step="building $tag"
  new_workdir
  ctx="$workdir/pause"
  mkdir -p "$ctx"
  cp "$here/pause/Dockerfile" "$ctx/"
  cp "$busybox" "$ctx/busybox"
  docker_build --label "pinnace.build-inputs=$inputs" -t "$tag" "$ctx"
  say "built $tag ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.1f MB", $1 / 1e6}'))"
}

# One base for pinnace/redis and the guestbook's stand-ins (below): php-cli and php-redis are
# the guestbook frontend's, and cost seconds here against a second debootstrap (about a
# minute) in every fresh CI run, which builds both.
redis_base=pinnace/debian-redis-base:bookworm
redis_base_packages=redis-server,php-cli,php-redis

build_redis() {
  # Never pulled: a pinnace/* name on a public registry would be someone else's image. Built
  # only on demand (the demo and the stateful tests), not by `make images`.
  local tag=pinnace/redis:latest base=$redis_base inputs
  local packages=$redis_base_packages
  inputs=$(hash_of "$here/redis/Dockerfile" <(echo "$recipe_version $packages"))
  if ! needs_build "$tag" "$inputs"; then
    say "$tag present"
    return
  fi
  build_debian_base "$base" "$packages"
  step="building $tag"
  docker_build --build-arg "BASE=$base" --label "pinnace.build-inputs=$inputs" -t "$tag" "$here/redis"
  say "built $tag ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%d MB", $1 / 1e6}'))"
}

build_debian_python() {
  # The base of pinnace's own image (compose/Dockerfile), one image for master and agents:
  # python3-venv brings ensurepip, so the image can make a venv and pip install wheels;
  # haproxy is the master's load balancer and each agent's node proxy, dnsmasq-base each
  # agent's cluster DNS, iproute2 the agent's routes to its node proxy (nsenter is in
  # util-linux, always there), nftables and conntrack the node proxy's UDP Services (its
  # kernel NAT rules, and deleting the flows of gone endpoints); no package can be fetched
  # inside a build here.
  build_debian_base pinnace/debian-python:bookworm \
    python3,python3-venv,ca-certificates,haproxy,dnsmasq-base,iproute2,nftables,conntrack
}

# --- stand-ins for the images the real manifests name ---------------------------------------
# tests/fixtures/real-manifests/ holds public applications' manifests, unmodified; the images
# they name cannot be pulled here. These stand-ins are made of Debian's packages, tagged with
# the exact names those manifests use, and behave like the originals on the wire: the same
# ports, variables, protocols and Service names they connect to (compose/images/standins/
# README.md lists each and what differs). Each carries the label pinnace.stand-in saying what
# it stands for. Never pulled: the originals are other programs (the voting app's result pushes
# its counts over socket.io, the stand-in serves them as JSON), and tests/bench/apps.py drives
# the stand-ins. An image of that name without our label (pulled where a registry answers) is
# kept as it is, as for nginx.

voting_packages=python3-flask,python3-redis,python3-psycopg2,postgresql-15

# build_standin TAG DIR BASE BASE-PACKAGES STANDS-IN: compose/images/standins/DIR FROM BASE
# (debootstrapped with BASE-PACKAGES when missing or from an older recipe), labelled
# pinnace.stand-in="TAG: STANDS-IN".
build_standin() {
  local tag=$1 ctx=$here/standins/$2 base=$3 packages=$4 what=$5 inputs
  inputs=$(hash_of "$ctx"/* <(echo "$recipe_version $base $packages $what"))
  if ! needs_build "$tag" "$inputs"; then
    say "$tag present"
    return
  fi
  build_debian_base "$base" "$packages"
  step="building $tag"
  docker_build --build-arg "BASE=$base" --label "pinnace.build-inputs=$inputs" \
    --label "pinnace.stand-in=$tag: $what, built by pinnace's compose/images/build.sh" \
    -t "$tag" "$ctx"
  say "built $tag (a stand-in: $(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%d MB", $1 / 1e6}'))"
}

build_guestbook() {
  # Kubernetes' guestbook (guestbook-all-in-one.yaml): leader, followers and the PHP frontend,
  # all on pinnace/redis's base.
  local base=$redis_base packages=$redis_base_packages
  build_standin registry.k8s.io/redis:e2e redis "$base" "$packages" "Debian's redis-server"
  build_standin gcr.io/google_samples/gb-redisslave:v1 gb-redisslave "$base" "$packages" \
    "Debian's redis-server as a replica of redis-master"
  build_standin gcr.io/google-samples/gb-frontend:v5 gb-frontend "$base" "$packages" \
    "Debian's php-cli and php-redis, same HTTP API"
}

build_voting() {
  # Docker's example voting app (voting-*.yaml): Redis on pinnace/redis's base, the rest
  # (vote, worker, result, db) on one base with Flask, redis-py, psycopg2 and PostgreSQL 15.
  local base=pinnace/debian-voting-base:bookworm packages=$voting_packages
  build_standin redis:alpine redis "$redis_base" "$redis_base_packages" "Debian's redis-server"
  build_standin postgres:15-alpine postgres "$base" "$packages" \
    "Debian's postgresql-15 with the official image's POSTGRES_* variables"
  build_standin dockersamples/examplevotingapp_vote vote "$base" "$packages" \
    "Debian's python3-flask and python3-redis, same form, cookie and Redis list"
  build_standin dockersamples/examplevotingapp_worker worker "$base" "$packages" \
    "Python with Debian's python3-redis and python3-psycopg2, same list, table and Services"
  build_standin dockersamples/examplevotingapp_result result "$base" "$packages" \
    "Python with Debian's python3-psycopg2, same query; counts as JSON at /scores, no socket.io"
}

build_podinfo() {
  # stefanprodan/podinfo (podinfo-*.yaml): one program in every tier, Python on the voting
  # app's base (python3 and redis-py are all it needs).
  build_standin ghcr.io/stefanprodan/podinfo:6.14.1 podinfo pinnace/debian-voting-base:bookworm \
    "$voting_packages" "Python, upstream's flags and HTTP API without gRPC or UI"
}

main() {
  (($# > 0)) || set -- nginx httpd pause
  step="talking to the Docker engine"
  docker info >/dev/null 2>&1 || fail "the Docker engine does not answer (is dockerd running?)"
  # Two builds at once (parallel make, two sessions) would debootstrap twice: take turns.
  exec 9>"${TMPDIR:-/var/tmp}/pinnace-images.lock"
  flock 9
  local name
  for name in "$@"; do
    case "$name" in
      nginx) build_nginx ;;
      httpd) build_httpd ;;
      pause) build_pause ;;
      redis) build_redis ;;
      debian-python) build_debian_python ;;
      guestbook) build_guestbook ;;
      voting) build_voting ;;
      podinfo) build_podinfo ;;
      *) fail "unknown image '$name' (known: nginx httpd pause redis debian-python guestbook voting podinfo)" ;;
    esac
  done
  # A rebuild leaves the previous image untagged; drop those, but only ones this script made.
  step="removing superseded images"
  if [[ -n $(docker images -q -f dangling=true -f label=pinnace.build-inputs) ]]; then
    docker image prune -f --filter label=pinnace.build-inputs >/dev/null
  fi
}

main "$@"
