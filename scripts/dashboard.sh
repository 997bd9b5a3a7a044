#!/usr/bin/env bash
# One command for a new user: set up, start the embedded database with the demo run, open the dashboard.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/streamlit run app/streamlit_app.py "$@"
