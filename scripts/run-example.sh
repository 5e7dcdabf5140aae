#!/usr/bin/env bash
# `make run`: serves the echo-bot example on the embedded SQLite store.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/release/firebreak
config=examples/echo-bot/firebreak.toml
mkdir -p var
"$bin" check -c "$config" >/dev/null
cat >&2 <<MSG

  firebreak is starting on http://127.0.0.1:8080 with the echo-bot example.
  Send it a signed Slack event from another terminal (in $(pwd)):

    $bin send -c $config --source slack

  The bot's answer shows up below as a "job succeeded" line, with the bot's own
  "echo-bot: ..." line before it. Ctrl-C stops firebreak gracefully.

MSG
exec "$bin" run -c "$config"
