#!/usr/bin/env bash
# Builds pinnace's own image (pinnace/pinnace:latest, one image for master and agents) from
# compose/Dockerfile, without any network inside the build.
#
# Why: no registry is reachable here and a build container has no network, so everything the
# image installs is prepared on the host first: the dependencies as wheels for the image's
# Python (CPython 3.11 on glibc, downloaded by the host's pip for that target, whatever the
# host's own Python is) and pinnace's own wheel, built from a copy of the sources.
#
# How: compose/.wheels/deps holds the dependencies' wheels and the requirements they satisfy
# (re-downloaded only when pyproject.toml's dependencies change); compose/.wheels/pinnace holds
# pinnace's wheel (rebuilt only when a source file is newer than it). The base is
# python:3.11-slim-bookworm when present or pullable, else pinnace/debian-python:bookworm made
# by compose/images/build.sh. The classic builder then reuses every layer whose inputs are
# unchanged, so a second build takes seconds.
#
# Environment: PINNACE_IMAGE (tag, default pinnace/pinnace:latest), PINNACE_BASE (skip the
# choice), PINNACE_PULL=0 (never try a pull), FORCE=1 (rebuild wheels and the image).
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
tag=${PINNACE_IMAGE:-pinnace/pinnace:latest}
wheels=$here/.wheels
py=$repo/.venv/bin/python
slim=python:3.11-slim-bookworm
step="starting"
workdir=""

say() { printf 'image: %s\n' "$*"; }
fail() {
  printf 'image: FAILED: %s\n' "$*" >&2
  exit 1
}
trap 'printf "image: FAILED while %s (see the output above)\n" "$step" >&2' ERR
trap '[[ -z "$workdir" ]] || rm -rf "$workdir"' EXIT

[[ -x "$py" ]] || fail "$py is missing: run \`make venv\` first"
workdir=$(mktemp -d "${TMPDIR:-/var/tmp}/pinnace-image.XXXXXX")

# --- the dependencies' wheels ---------------------------------------------------------------

dependency_wheels() {
  local want="$workdir/requirements.txt" arch
  step="reading the dependencies from pyproject.toml"
  "$py" - "$repo/pyproject.toml" >"$want" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))
PY
  # Pinned to the versions the venv (and so every test) runs with.
  "$py" -m pip freeze -q --exclude-editable --disable-pip-version-check >"$workdir/constraints.txt"
  cat "$want" "$workdir/constraints.txt" >"$workdir/inputs"
  if [[ "${FORCE:-0}" != 1 ]] && cmp -s "$workdir/inputs" "$wheels/deps/.inputs"; then
    say "dependency wheels present ($(find "$wheels/deps" -name '*.whl' | wc -l) in compose/.wheels/deps)"
    return
  fi
  case "$(uname -m)" in
    x86_64 | amd64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch64 ;;
    *) fail "no wheels for $(uname -m): only x86_64 and aarch64 are supported" ;;
  esac
  step="downloading the dependencies' wheels for CPython 3.11 ($arch)"
  say "$step"
  rm -rf "$wheels/deps.new"
  mkdir -p "$wheels/deps.new"
  # glibc 2.36 is bookworm's: every manylinux tag up to it fits, and pure wheels. pip takes
  # each tag literally (it does not imply the older ones), so all are listed.
  local platforms=(--platform any --platform "manylinux2014_$arch" --platform "manylinux1_$arch")
  for minor in $(seq 5 36); do platforms+=(--platform "manylinux_2_${minor}_$arch"); done
  "$py" -m pip download -q --disable-pip-version-check --only-binary=:all: \
    --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none \
    "${platforms[@]}" -r "$want" -c "$workdir/constraints.txt" -d "$wheels/deps.new"
  cp "$want" "$wheels/deps.new/requirements.txt"
  cp "$workdir/inputs" "$wheels/deps.new/.inputs"
  rm -rf "$wheels/deps"
  mv "$wheels/deps.new" "$wheels/deps"
  say "downloaded $(find "$wheels/deps" -name '*.whl' | wc -l) wheels into compose/.wheels/deps"
}

# --- pinnace's own wheel --------------------------------------------------------------------

pinnace_wheel() {
  local current src newer
  current=$(find "$wheels/pinnace" -name 'pinnace-*.whl' 2>/dev/null | head -n1 || true)
  if [[ "${FORCE:-0}" != 1 && -n "$current" ]]; then
    newer=$(find "$repo/pyproject.toml" "$repo/README.md" "$repo/master" "$repo/agent" \
      "$repo/kernel" "$repo/protos" -type f -newer "$current" \( -name '*.py' -o -name '*.pyi' -o -name '*.toml' \
      -o -name '*.md' -o -name '*.proto' \) -print -quit)
    if [[ -z "$newer" ]]; then
      say "pinnace wheel up to date ($(basename "$current"))"
      return
    fi
  fi
  # Built from a copy, so setuptools' build/ and egg-info never land in the working tree.
  step="building pinnace's wheel"
  say "$step"
  src="$workdir/src"
  mkdir -p "$src"
  cp "$repo/pyproject.toml" "$repo/README.md" "$src/"
  (cd "$repo" && tar --exclude=__pycache__ -c master agent kernel protos) | tar -x -C "$src"
  "$py" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation \
    -w "$workdir/dist" "$src" >"$workdir/wheel.log" 2>&1 || {
    tail -n 20 "$workdir/wheel.log" >&2
    false
  }
  rm -rf "$wheels/pinnace"
  mkdir -p "$wheels/pinnace"
  mv "$workdir"/dist/pinnace-*.whl "$wheels/pinnace/"
}

# --- the base and the image -----------------------------------------------------------------

choose_base() {
  if [[ -n "${PINNACE_BASE:-}" ]]; then
    echo "$PINNACE_BASE"
  elif docker image inspect "$slim" >/dev/null 2>&1; then
    echo "$slim"
  elif [[ "${PINNACE_PULL:-1}" != 0 ]] &&
    timeout "${PULL_TIMEOUT:-120}" docker pull -q "$slim" >/dev/null 2>&1; then
    echo "$slim"
  else
    bash "$here/images/build.sh" debian-python >&2
    echo pinnace/debian-python:bookworm
  fi
}

main() {
  step="talking to the Docker engine"
  docker info >/dev/null 2>&1 || fail "the Docker engine does not answer (is dockerd running?)"
  dependency_wheels
  pinnace_wheel
  step="choosing the base image"
  local base no_cache=()
  base=$(choose_base)
  [[ "${FORCE:-0}" == 1 ]] && no_cache=(--no-cache)
  step="building $tag on $base"
  say "$step"
  # Classic builder: no buildx needed, and FROM a local image never asks a registry.
  if ! DOCKER_BUILDKIT=0 docker build "${no_cache[@]}" --build-arg "BASE=$base" \
    --label pinnace.image=pinnace -t "$tag" -f "$here/Dockerfile" "$here" \
    >"$workdir/build.log" 2>&1; then
    grep -v -e DEPRECATED -e 'legacy builder' -e 'BuildKit is currently' -e 'environment-variable' \
      "$workdir/build.log" | tail -n 30 >&2
    false
  fi
  # The image this build replaced is left untagged: drop it (only ever ours).
  docker image prune -f --filter label=pinnace.image=pinnace >/dev/null
  say "built $tag ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%d MB", $1 / 1e6}'))"
}

main "$@"
