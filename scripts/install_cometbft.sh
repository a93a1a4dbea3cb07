#!/usr/bin/env bash
# Build CometBFT and abci-cli at the pinned version into the repo's .bin/ (only when missing or at
# another version). The binaries come from the Go module proxy via `go install`, never `@latest`
# (that resolves to v1.x); see docs/adr/0004-abci-server.md and shared notes on CometBFT.
#
# Usage: scripts/install_cometbft.sh            # idempotent; prints what it does
# Env:   COMETBFT_VERSION (default v0.38.25), CITYCHAIN_BIN (default <repo>/.bin)
set -euo pipefail

VERSION="${COMETBFT_VERSION:-v0.38.25}"
MODULE="github.com/cometbft/cometbft"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CITYCHAIN_BIN:-$ROOT/.bin}"
# binary name -> package path inside the module
TOOLS=("cometbft:cmd/cometbft" "abci-cli:abci/cmd/abci-cli")

say() { echo "install_cometbft: $*"; }

if ! command -v go >/dev/null 2>&1; then
    say "error: 'go' is not on PATH; install Go >= 1.22.11 (https://go.dev/dl/)" >&2
    exit 1
fi

mkdir -p "$BIN"
# Several test processes may call this at once: one builds, the others wait and then find it done.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$BIN/.install.lock"
    flock 9
fi

# The module version a Go binary was built from, read from its embedded build info.
built_version() {
    { go version -m "$1" 2>/dev/null || true; } | awk -v m="$MODULE" '$1 == "mod" && $2 == m {print $3}'
}

for entry in "${TOOLS[@]}"; do
    name="${entry%%:*}"
    package="$MODULE/${entry#*:}"
    target="$BIN/$name"
    if [[ -x "$target" ]]; then
        have="$(built_version "$target")"
        if [[ "$have" == "$VERSION" ]]; then
            say "$name $VERSION already in $BIN"
            continue
        fi
        say "$name in $BIN is ${have:-of unknown version}; rebuilding at $VERSION"
        rm -f "$target"  # go install refuses to overwrite a file it did not build
    else
        say "building $name $VERSION into $BIN ($(go version | awk '{print $3}'), this takes a few minutes)"
    fi
    GOBIN="$BIN" CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -buildvcs=false -trimpath" \
        go install "$package@$VERSION"
    have="$(built_version "$target")"
    if [[ "$have" != "$VERSION" ]]; then
        say "error: built $target but it reports version '${have}', expected $VERSION" >&2
        exit 1
    fi
    say "installed $target ($VERSION)"
done
