#!/usr/bin/env bash
# test.sh: every test on a fresh machine: install what the project needs, build,
# then `make check` (cmocka unit tests, kernel tests, pytest integration tests
# against real daemons on loopback). GPU tests skip with a printed reason when
# there is no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
make -j"$(nproc)" all
make check
