#!/usr/bin/env bash
# Build the IoT gateway's signature verifier (tools/sigverify, Go) into the repo's .bin/, again
# whenever its sources changed. The gateway uses it when it is there and falls back to PyNaCl in
# a Python process when it is not (see docs/iot.md, "Signature checks").
#
# Usage: scripts/install_sigverify.sh            # idempotent; prints what it does
# Env:   CITYCHAIN_BIN (default <repo>/.bin)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CITYCHAIN_BIN:-$ROOT/.bin}"
SOURCE="$ROOT/tools/sigverify"
TARGET="$BIN/citychain-sigverify"

say() { echo "install_sigverify: $*"; }

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
    export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
    say "error: 'go' is not on PATH; install Go >= 1.22.11 (https://go.dev/dl/)" >&2
    exit 1
fi

mkdir -p "$BIN"
if command -v flock >/dev/null 2>&1; then  # several processes may call this at once
    exec 9>"$BIN/.install.lock"
    flock 9
fi

digest="$(cd "$SOURCE" && cat go.mod go.sum ./*.go | sha256sum | cut -d' ' -f1)"
if [[ -x "$TARGET" && "$(cat "$TARGET.source" 2>/dev/null)" == "$digest" ]]; then
    say "citychain-sigverify already built from these sources in $BIN"
    exit 0
fi
say "building citychain-sigverify into $BIN ($(go version | awk '{print $3}'))"
(cd "$SOURCE" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -o "$TARGET.tmp" .)
mv "$TARGET.tmp" "$TARGET"
echo "$digest" > "$TARGET.source"
say "installed $TARGET ($("$TARGET" -version))"
