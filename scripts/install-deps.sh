#!/usr/bin/env bash
# Installs the Debian 12 packages firebreak needs to build, test and benchmark.
# Idempotent: only missing packages are installed. Usage: scripts/install-deps.sh [build|test|bench]
set -euo pipefail

profile="${1:-build}"

build_pkgs=(
  build-essential cmake ninja-build pkg-config git
  libboost1.81-dev libboost-url1.81-dev libboost-json1.81-dev
  libssl-dev libsimdjson-dev nlohmann-json3-dev libsqlite3-dev
  libtomlplusplus-dev libcli11-dev prometheus-cpp-dev
  libcurl4-openssl-dev libhiredis-dev libpq-dev libgtest-dev libgmock-dev libbenchmark-dev
  python3 curl ca-certificates
)
test_pkgs=(sqlite3 procps redis-server postgresql iproute2 clang libclang-rt-14-dev prometheus
  openssl)  # openssl: the CLI makes the test CAs of the TLS tests
bench_pkgs=(wrk nginx-light linux-perf valgrind)

pkgs=("${build_pkgs[@]}")
case "$profile" in
  build) ;;
  test) pkgs+=("${test_pkgs[@]}") ;;
  bench) pkgs+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

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
