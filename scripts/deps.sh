#!/bin/sh
# Installs the Debian packages in scripts/deps.txt that are not installed yet.
# Idempotent; uses sudo when not root; `--check` only reports (exit 1 when something is missing).
set -eu
here=$(dirname "$0")
missing=""
for p in $(grep -v '^#' "$here/deps.txt" | tr -s ' \n' ' '); do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    [ "${1:-}" = "--check" ] || echo "deps: all packages present"
    exit 0
fi
if [ "${1:-}" = "--check" ]; then
    echo "deps: missing:$missing" >&2
    exit 1
fi
echo "deps: installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || $SUDO apt-get update
$SUDO apt-get install -y -qq --no-install-recommends $missing
