#!/usr/bin/env bash
# One command for a new user and for CI: set up, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The end-to-end tests drive Debian's Chromium; install it when we can (root on Debian).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || echo "note: could not install chromium; browser tests will be skipped" >&2
fi
# The rules tools check (fail before the tests on a violation): lint, and the layering
# contracts of pyproject.toml's [tool.importlinter] (the engine imports no store, service or
# front end; the command line and the API reach the store only through the service).
.venv/bin/ruff check .
.venv/bin/lint-imports
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
