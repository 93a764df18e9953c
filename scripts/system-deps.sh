#!/usr/bin/env bash
# System packages the test suite needs, installed only when missing:
# - Debian's prometheus (server + promtool), for the tests that scrape a real daemon with a real
#   Prometheus;
# - Debian's chromium and chromium-driver, for the status page test in a real headless browser
#   (selenium drives them; no browser is downloaded).
set -euo pipefail
missing=()
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    missing+=(prometheus)
fi
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
echo "system-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian package starts a service on :9090 where systemd runs; the tests start their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    $SUDO systemctl stop prometheus || true
fi
command -v promtool >/dev/null && command -v chromium >/dev/null && command -v chromedriver >/dev/null
