#!/bin/sh
# Install the Mosquitto MQTT broker (Debian package) used by tests/iot and the IoT demo.
# Idempotent: does nothing when `mosquitto` is already installed. Tests never use the system
# service: they start their own `mosquitto -c <conf>` on a free loopback port.
set -eu

if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
    exit 0
fi

sh "$(dirname "$0")/apt_install.sh" mosquitto
