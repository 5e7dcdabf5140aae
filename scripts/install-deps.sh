#!/usr/bin/env bash
# Installs the Debian 12 packages firebreak needs to build, test and benchmark.
# Idempotent: only missing packages are installed. Usage: scripts/install-deps.sh [build|test|bench]
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${1:-build}"

build_pkgs=(
  build-essential cmake ninja-build pkg-config git
  libboost1.81-dev libboost-url1.81-dev libboost-json1.81-dev
  libssl-dev libsimdjson-dev nlohmann-json3-dev libsqlite3-dev
  libtomlplusplus-dev libcli11-dev prometheus-cpp-dev
  libcurl4-openssl-dev libhiredis-dev libpq-dev libgtest-dev libgmock-dev libbenchmark-dev
  libhowardhinnant-date-dev tzdata  # time zones of [[schedules]] (the system tz database)
  python3 curl ca-certificates
  ccache  # keeps compiled objects across builds and clean clones (cmake/ccache.cmake)
)
test_pkgs=(sqlite3 procps redis-server postgresql iproute2 clang libclang-rt-14-dev prometheus
  openssl  # openssl: the CLI makes the test CAs of the TLS tests
  python3-jsonschema  # the handler protocol's JSON Schemas (schemas/), checked by the SDK tests
  chromium)  # the web console's browser tests (tests/browser), driven by npm's playwright-core
bench_pkgs=(wrk nginx-light linux-perf valgrind
  # bench/peers_bench.sh: FastAPI + uvicorn + rq, the Python stack a user would deploy instead
  python3-fastapi python3-uvicorn python3-rq python3-redis)

pkgs=("${build_pkgs[@]}")
case "$profile" in
  build) ;;
  test) pkgs+=("${test_pkgs[@]}") ;;
  bench) pkgs+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

# Node.js and npm for the browser tests: Debian's, unless the machine already has both
# (e.g. NodeSource's nodejs, which bundles npm and conflicts with Debian's npm package).
if [[ "$profile" != build ]] && ! { command -v node && command -v npm; } >/dev/null; then
  pkgs+=(nodejs npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

# npm ci in $1 when its lock file is newer than what is installed (idempotent).
npm_ci() {
  local dir=$1
  [[ -f "$dir/package-lock.json" ]] || return 0
  if [[ ! -f "$dir/node_modules/.package-lock.json" ||
        "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]]; then
    echo "install-deps: npm ci in $dir" >&2
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$dir" --no-audit --no-fund \
      --loglevel=error >/dev/null
  fi
}

# The browser tests' npm packages (playwright-core, pinned by tests/browser's lock file;
# it drives Debian's chromium and never downloads a browser), and for `bench` the peer
# stacks of bench/peers_bench.sh (Express, BullMQ, ioredis; pinned by bench/peers's).
install_npm_deps() {
  [[ "$profile" != build ]] || return 0
  npm_ci tests/browser
  npm_ci sdk/typescript  # the TypeScript SDK's compiler (typescript, @types/node)
  [[ "$profile" != bench ]] || npm_ci bench/peers
}

if [[ ${#missing[@]} -eq 0 ]]; then
  install_npm_deps
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Tests start their own PostgreSQL clusters; the package's default cluster (which would
# try to start a server on port 5432) is not wanted.
if [[ " ${missing[*]} " == *" postgresql "* && ! -e /etc/postgresql-common/createcluster.conf ]]; then
  $SUDO mkdir -p /etc/postgresql-common
  echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.conf >/dev/null
fi
$SUDO apt-get update -qq
# nginx's package tries to start a service; policy-rc.d keeps it from doing so without systemd.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
install_npm_deps
