#!/usr/bin/env bash
# The C++ SDK as a package: configure and build sdk/cpp on its own, install it to a temp
# prefix, build tests/package (the README's "write a handler" bot) against the installed
# package with find_package(firebreak-sdk), and check the bot answers an envelope.
set -euo pipefail
sdk=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
export CCACHE_BASEDIR=$sdk CCACHE_NOHASHDIR=1

cmake -S "$sdk" -B "$work/sdk" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$work/prefix" "${launcher[@]}" >/dev/null
cmake --build "$work/sdk" -j "${JOBS:-2}" >/dev/null
cmake --install "$work/sdk" >/dev/null
cmake -S "$sdk/tests/package" -B "$work/bot" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
  "${launcher[@]}" >/dev/null
cmake --build "$work/bot" >/dev/null

# The bot is the README's C++ example, verbatim.
/usr/bin/python3 -c 'import sys; sys.exit(open(sys.argv[1]).read() not in open(sys.argv[2]).read())' \
  "$sdk/tests/package/bot.cc" "$sdk/../../README.md" ||
  { echo "sdk/cpp/tests/package/bot.cc is not the README's C++ example" >&2; exit 1; }

answer=$(printf '%s\n' '{"id":"J1","type":"other","payload":{}}' | "$work/bot/mybot")
expected='{"error":"no handler for job type '"'"'other'"'"'","id":"J1","ok":false,"retry":false}'
if [[ "$answer" != "$expected" ]]; then
  echo "unexpected answer: $answer" >&2
  exit 1
fi
ls "$work/prefix/include/firebreak/sdk.h" "$work/prefix/lib/cmake/firebreak-sdk/firebreak-sdkConfig.cmake" >/dev/null
echo "ok: built against the installed package, answered $answer"
