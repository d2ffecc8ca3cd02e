#!/usr/bin/env bash
# Headless Chromium for the evaluation report's browser test (tests/unit/test_eval_report.py), from Debian's
# `chromium` package. `make install` runs it when /usr/bin/chromium is missing; it needs root (or sudo).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "install-chromium: needs root or sudo to apt-get install chromium (the report's browser test needs it)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
