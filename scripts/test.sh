#!/usr/bin/env bash
# test.sh: every test on a fresh machine: install what the project needs, build,
# then `make check` (cmocka unit tests, kernel tests, pytest integration tests
# against real daemons on loopback). GPU tests skip with a printed reason when
# there is no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The model tests need all-MiniLM-L6-v2 (the connected-side fetch, pinned by SHA-256).
scripts/fetch-model.sh build/model
make -j"$(nproc)" all
make check
