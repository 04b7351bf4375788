#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
#   ./run.sh                 build, then open the bundled sample document
#   ./run.sh FILE…           build, then open these images
#   ./run.sh test            build, then run every test suite
#   ./run.sh test asan       the same with AddressSanitizer and UBSan (build-asan/)
#   ./run.sh cli ARGS…       build, then run tessera-cli with ARGS
#
# Missing Debian packages are installed with apt-get when run as root;
# otherwise the exact command to run is printed.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(
  meson ninja-build pkg-config gcc libc6-dev
  libglib2.0-dev libglib2.0-bin libgtk-4-dev libadwaita-1-dev libgdk-pixbuf-2.0-dev
  libcairo2-dev libpango1.0-dev libopenblas-dev libsqlite3-dev libcjson-dev
  gettext desktop-file-utils appstream
  python3 xvfb xauth
  fonts-dejavu-core librsvg2-common webp-pixbuf-loader
  clang-14 libclang-rt-14-dev
)

say() { printf '%s\n' "$*" >&2; }

ensure_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    say "run.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q "${missing[@]}" >&2
  else
    say "run.sh: these Debian packages are missing. Install them, then run this again:"
    say "  sudo apt-get install ${missing[*]}"
    exit 1
  fi
}

# build DIR [meson options…]
build() {
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >&2
  fi
  meson compile -C "$dir" >&2
}

# Prints the closing line from meson's test log and fails if any test failed.
summarise() {
  local log=$1/meson-logs/testlog.json
  python3 - "$log" <<'PY'
import json, sys
passed = failed = skipped = 0
with open(sys.argv[1]) as f:
    for line in f:
        line = line.strip()
        if not line:
            continue
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
tail = f", {skipped} skipped" if skipped else ""
print(f"{passed} passed, {failed} failed{tail}")
sys.exit(1 if failed else 0)
PY
}

run_tests() {
  local dir=build
  local opts=()
  if [ "${1:-}" = asan ]; then
    dir=build-asan
    opts=(-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug)
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  fi
  build "$dir" "${opts[@]}"
  rm -f "$dir/meson-logs/testlog.json"
  local rc=0
  meson test -C "$dir" --print-errorlogs --num-processes 2 >&2 || rc=$?
  if [ ! -f "$dir/meson-logs/testlog.json" ]; then
    say "run.sh: meson test did not run (exit $rc)"
    echo "0 passed, 1 failed"
    return 1
  fi
  summarise "$dir"
}

ensure_packages

case "${1:-}" in
  test)
    shift
    run_tests "$@"
    ;;
  cli)
    shift
    build build
    exec ./build/app/tessera-cli "$@"
    ;;
  *)
    build build
    if [ $# -eq 0 ]; then
      set -- build/data/sample-document.png
    fi
    if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
      say "run.sh: there is no display to show a window on. Run it in a desktop session,"
      say "or under Xvfb: xvfb-run -a ./run.sh"
      exit 1
    fi
    exec ./build/app/tessera "$@"
    ;;
esac
