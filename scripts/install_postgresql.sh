#!/bin/sh
# Install PostgreSQL (Debian package) used by tests/iot for the gateway's PostgreSQL reading store.
# Idempotent: does nothing when `initdb` is already installed (on PATH, or in
# /usr/lib/postgresql/<major>/bin where Debian keeps it). Tests never use the system service:
# they initdb their own cluster in a temp dir and start it on a free loopback port
# (src/citychain/testing/postgres.py), as the `postgres` user when run as root.
set -eu

if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    exit 0
fi

sh "$(dirname "$0")/apt_install.sh" postgresql
