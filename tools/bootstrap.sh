#!/usr/bin/env bash
# bootstrap.sh - install what is missing, build, and run the demo or the tests.
#
#   bash tools/bootstrap.sh demo   # install, build, run the live tour
#   bash tools/bootstrap.sh test   # install, build, run every test
#
# Idempotent: packages already installed are skipped.  Needs root (or sudo)
# only when a package is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-demo}
packages=(
  build-essential cmake pkg-config git python3
  libzmq3-dev liblmdb-dev libprotobuf-c-dev protobuf-c-compiler
  libsodium-dev libuv1-dev libcriterion-dev libjansson-dev libinih-dev
  libsystemd-dev libcsv-dev lmdb-utils clang clang-format libclang-rt-14-dev tzdata
  libmicrohttpd-dev libxml2-dev libgnutls28-dev libcurl4-openssl-dev curl openssl
  debootstrap dpkg-dev
)
# `test` only: the dashboard's browser test (tests/browser) runs Debian's
# chromium, driven from Node.js (its npm dependencies: npm ci, run by the
# test itself when they are missing).
[ "$mode" = test ] && packages+=(chromium nodejs npm)

# A Node.js from elsewhere (e.g. NodeSource's nodejs, which carries its own
# npm and conflicts with Debian's npm package) is kept: nodejs and npm are
# installed only when their commands are missing.
have_command() { # have_command PACKAGE: its command is already there
  case "$1" in
    nodejs) command -v node >/dev/null ;;
    npm) command -v npm >/dev/null ;;
    *) return 1 ;;
  esac
}

install_missing() {
  local missing=()
  for p in "${packages[@]}"; do
    have_command "$p" && continue
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "bootstrap: all ${#packages[@]} packages present"
    return
  fi
  echo "bootstrap: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

jobs=$(nproc 2>/dev/null || echo 2)

build() { # build DIR [cmake args...]
  local dir=$1; shift
  cmake -S . -B "$dir" -DBS_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
}

run_tests() { # run_tests DIR
  (cd "$1" && ctest --output-on-failure -j"$jobs" --timeout 900)
}

install_missing
case "$mode" in
  demo)
    build build -DCMAKE_BUILD_TYPE=Release
    exec bash deploy/demo.sh build
    ;;
  test)
    echo "== build (Debug, AddressSanitizer + UndefinedBehaviorSanitizer)"
    build build-asan -DCMAKE_BUILD_TYPE=Debug -DBS_SANITIZE=address,undefined
    echo "== tests under ASan + UBSan"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 run_tests build-asan
    echo "== build (Release)"
    build build -DCMAKE_BUILD_TYPE=Release
    echo "== tests (Release)"
    run_tests build
    echo "== demo smoke run"
    bash deploy/demo.sh build >/dev/null
    echo "== formatting (clang-format)"
    git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror
    echo "bootstrap: all checks passed"
    ;;
  build)
    build build -DCMAKE_BUILD_TYPE=Release
    ;;
  *)
    echo "usage: bash tools/bootstrap.sh demo|test|build" >&2
    exit 2
    ;;
esac
