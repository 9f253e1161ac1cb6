#!/usr/bin/env bash
# gpu-deps.sh: the connected-side step of a GPU run. Downloads (apt-get download,
# this machine's Debian 12 amd64 archive) the C libraries that tests/gpu/run.sh
# needs to build and run its targets on the device machine's bare CUDA image,
# trims each .deb to its headers and shared libraries, and writes them to DIR
# (default .gpu-deps/, ignored by git). The device tool carries DIR
# (carry [".gpu-deps", "build/gpu-model"]); run.sh unpacks every .deb there with
# `dpkg-deb -x` into DIR/root and builds with `make DEPS_PREFIX=DIR/root`.
#
# Usage: scripts/gpu-deps.sh [DIR]
# The set: the -dev packages of scripts/install-deps.sh that the CUDA build links
# (ZeroMQ, LMDB, libconfig, jansson, libsodium, OpenSSL's libcrypto, utf8proc,
# cmocka, OpenBLAS), their runtime libraries, and those libraries' own
# shared-library closure except glibc, libgcc_s and libstdc++ (the image has
# those: nvcc needs them), plus GNU make
# (used there only when the image has none). The closure is checked, not trusted:
# every DT_NEEDED of every carried .so must be carried or in BASE_LIBS, else exit 1.
# Trimmed away: usr/share (docs, man, locale), static archives, cmake and
# pkg-config files, OpenBLAS's libblas.so.3 and liblapack.so.3 (moat calls
# cblas_sgemm and openblas_set_num_threads, both in libopenblas.so.0): 15 MB of
# .debs become about 8.8 MB, which leaves room for the 50 MiB model copy under the
# device tool's 64 MiB limit.
# Needs: apt-get (with package lists), dpkg-deb, readelf. Exit status: 0 done; 1 failed.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.gpu-deps}

# -dev: headers and the lib*.so link names; the rest: what runs, closure included.
DEV=(libzmq3-dev liblmdb-dev libconfig-dev libjansson-dev libsodium-dev libssl-dev
     libutf8proc-dev libcmocka-dev libopenblas-pthread-dev)
RUNTIME=(libzmq5 liblmdb0 libconfig9 libjansson4 libsodium23 libssl3 libutf8proc2 libcmocka0
         libopenblas0-pthread
         libgfortran5 libquadmath0                     # OpenBLAS's LAPACK half
         libpgm-5.3-0 libnorm1 libbsd0 libmd0           # ZeroMQ's transports
         libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1)
TOOLS=(make)
# sonames the device image provides (glibc, the compiler's runtime)
BASE_LIBS="libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1 libresolv.so.2
ld-linux-x86-64.so.2 libgcc_s.so.1 libstdc++.so.6"

die() { echo "gpu-deps: $*" >&2; exit 1; }
[ "$(dpkg --print-architecture)" = amd64 ] || die "needs an amd64 Debian host (the device is x86-64)"
command -v readelf > /dev/null || die "readelf not found (binutils)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gpu-deps.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/dl" "$TMP/root"
# Sandbox::User=root: as root apt would hand the download to user _apt, which
# cannot write into a mktemp folder (it warns, then downloads as root anyway)
(cd "$TMP/dl" && apt-get download -q -oAPT::Sandbox::User=root "${DEV[@]}" "${RUNTIME[@]}" "${TOOLS[@]}" > /dev/null) ||
    die "apt-get download failed (apt-get update first?)"

rm -rf "$DIR"
mkdir -p "$DIR"
orig=0
for deb in "$TMP"/dl/*.deb; do
    orig=$((orig + $(stat -c %s "$deb")))
    x=$TMP/x
    rm -rf "$x"
    dpkg-deb -R "$deb" "$x"
    # only DEBIAN/control: maintainer scripts never run under `dpkg-deb -x`, and
    # md5sums/conffiles would name files removed below
    find "$x/DEBIAN" -mindepth 1 ! -name control -delete
    rm -rf "${x:?}/usr/share"
    find "$x" \( -name '*.a' -o -name cmake -o -name pkgconfig \
        -o -name 'libblas.so*' -o -name 'liblapack.so*' \) -prune -exec rm -rf {} +
    find "$x" -depth -type d -empty -delete
    mkdir -p "$x/usr"                   # dpkg-deb wants a non-empty tree
    dpkg-deb --root-owner-group -Zxz -z9 -Sextreme -b "$x" "$DIR/$(basename "$deb")" > /dev/null
    dpkg-deb -x "$DIR/$(basename "$deb")" "$TMP/root"
done

# closure check: every DT_NEEDED of every shared library is carried or in BASE_LIBS
have=$(find "$TMP/root" -name 'lib*.so*' -printf '%f\n' | sort -u)
missing=""
while read -r so; do
    for need in $(readelf -d "$so" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        case " $(echo $BASE_LIBS $have) " in *" $need "*) ;; *) missing+=" $need(${so##*/})" ;; esac
    done
done < <(find "$TMP/root" -name 'lib*.so*' -type f)
[ -z "$missing" ] || die "not carried and not in the image's base:$missing"
for h in zmq.h lmdb.h libconfig.h jansson.h sodium.h openssl/evp.h utf8proc.h cmocka.h; do
    [ -f "$TMP/root/usr/include/$h" ] || die "$h missing from the unpacked set"
done
[ -f "$TMP/root/usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h" ] || die "cblas.h missing"
for f in libzmq.so liblmdb.so libconfig.so libjansson.so libsodium.so libcrypto.so libutf8proc.so \
         libcmocka.so openblas-pthread/libopenblas.so; do   # the link names -lX finds
    [ -e "$TMP/root/usr/lib/x86_64-linux-gnu/$f" ] || die "$f missing from the unpacked set"
done

n=$(ls "$DIR"/*.deb | wc -l)
total=$(du -cb "$DIR"/*.deb | tail -1 | cut -f1)
echo "gpu-deps: $n .deb in $DIR: $total bytes ($((total / 1024)) KiB; $((orig / 1024)) KiB before trimming)"
