#!/usr/bin/env bash
# install-deps.sh: install every Debian package and PyPI test tool moat needs.
# Idempotent: does nothing (and prints nothing) when everything is present.
# Usage: scripts/install-deps.sh [--bench]   (--bench adds Slurm + munge for bench/sched)
set -euo pipefail

debs=(
  build-essential pkg-config
  libzmq3-dev        # ZeroMQ: the fabric (ROUTER/DEALER, CURVE)
  liblmdb-dev        # LMDB: durable store for jobs, tasks, results
  libconfig-dev      # libconfig: daemon configuration files
  libjansson-dev     # jansson: JSON for the CLI, job specs, safetensors headers
  libcmocka-dev      # cmocka: C unit tests
  libopenblas-dev    # OpenBLAS: CPU GEMM (cblas)
  libutf8proc-dev    # utf8proc: Unicode normalisation for the tokeniser
  libsodium-dev      # libsodium: Ed25519 artifact signatures (and CURVE, via libzmq)
  libssl-dev         # OpenSSL libcrypto: SHA-256 of artifacts (SHA-NI; shared/sha256.h)
  clang              # libFuzzer targets (make fuzz-check, part of make check)
  fortunes           # the fortunes corpus (about 15,000 short texts): the demo's real input
  python3-matplotlib # bench-kernels --plot (bench/kernels/plot.py draws the PNG)
  python3 python3-venv
)
if [ "${1:-}" = "--bench" ]; then
  debs+=(slurm-wlm munge)
fi

missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Test tooling from PyPI, for the python3 that is first on PATH.
for mod in pytest zmq; do
  if ! python3 -c "import $mod" 2>/dev/null; then
    pkg=$mod; [ "$mod" = zmq ] && pkg=pyzmq
    echo "install-deps: installing $pkg"
    python3 -m pip install -q --disable-pip-version-check "$pkg"
  fi
done
