#!/bin/sh
# Install Debian packages without recommends, quietly, with sudo unless already root:
#   sh scripts/apt_install.sh PACKAGE...
# Used by the install_*.sh scripts once they found the program missing.
set -eu

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
else
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "$@"
