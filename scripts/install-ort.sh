#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Makes a prebuilt ONNX Runtime available under third_party/ort/ of the
# repository, for builds with MI_WITH_ORT:
#
#   third_party/ort/include/onnxruntime_c_api.h   (and the other headers)
#   third_party/ort/lib/libonnxruntime.so         (the library)
#   third_party/ort/lib/libonnxruntime.so.1       (symlink: the SONAME)
#   third_party/ort/.stamp                        (what is installed)
#
# The files come from two npm packages, fetched with the ordinary npm client
# (so its proxy and registry settings apply) into a temporary folder with
# install scripts disabled:
#   com.github.asus4.onnxruntime  ORT headers and the linux-x64 library
#   onnxruntime-node              the linux-arm64 library
#
# The script does nothing when ORT_ROOT is set or pkg-config knows
# libonnxruntime (the build uses those first, see cmake/FindOnnxRuntime.cmake),
# and returns at once when the stamp says the wanted version is in place.
#
# Usage: scripts/install-ort.sh [--force]
#   --force   reinstall even if the stamp matches
# Environment:
#   ORT_ARCH  machine to install for (default: uname -m): x86_64 or aarch64

set -euo pipefail

readonly ORT_VERSION="1.29.0"       # headers; the x86_64 library
readonly ORT_VERSION_ARM64="1.30.0" # the aarch64 library (same C ABI)
readonly PKG_HEADERS="com.github.asus4.onnxruntime@0.4.9"
readonly PKG_ARM64="onnxruntime-node@1.30.0"

readonly HEADERS_DIR="Plugins/iOS~/onnxruntime.xcframework/ios-arm64/\
onnxruntime.framework/Headers"
readonly X64_DIR="Plugins/Linux/x64"
readonly ARM64_DIR="bin/napi-v6/linux/arm64"

NAME=install-ort
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

parse_args "$@"

# ---- An ONNX Runtime the build prefers is already there ----

if [[ -n "${ORT_ROOT:-}" ]]; then
    say "ORT_ROOT is set ('$ORT_ROOT'): the build uses it, nothing to do"
    exit 0
fi
if command -v pkg-config >/dev/null 2>&1 &&
    pkg-config --exists libonnxruntime; then
    say "pkg-config finds libonnxruntime" \
        "$(pkg-config --modversion libonnxruntime): nothing to do"
    exit 0
fi

# ---- What to install ----

arch="${ORT_ARCH:-$(uname -m)}"
case "$arch" in
x86_64 | amd64)
    arch="x86_64"
    lib_version="$ORT_VERSION"
    packages=("$PKG_HEADERS")
    ;;
aarch64 | arm64)
    arch="aarch64"
    lib_version="$ORT_VERSION_ARM64"
    packages=("$PKG_HEADERS" "$PKG_ARM64")
    ;;
*) die "no prebuilt ONNX Runtime for machine '$arch'; set ORT_ROOT" ;;
esac

dest="$repo_root/third_party/ort"
stamp_text="onnxruntime $lib_version linux-$arch ${packages[*]}"

if [[ $force -eq 0 && -f "$dest/.stamp" &&
    -f "$dest/include/onnxruntime_c_api.h" &&
    -f "$dest/lib/libonnxruntime.so" ]] &&
    [[ "$(cat "$dest/.stamp")" == "$stamp_text" ]]; then
    say "ONNX Runtime $lib_version ($arch) already in $dest"
    exit 0
fi

need_npm "ONNX Runtime"

# ---- Fetch into a temporary folder, assemble, then swap into place ----

work="$(mktemp -d "${TMPDIR:-/tmp}/mi-ort.XXXXXX")"
staging="$repo_root/third_party/.ort.staging.$$"
cleanup() {
    rm -rf "$work" "$staging"
}
trap cleanup EXIT

say "fetching ${packages[*]}"
npm install --ignore-scripts --no-audit --no-fund --no-save \
    --loglevel=error --prefix "$work" "${packages[@]}" >/dev/null ||
    die "npm install failed"

modules="$work/node_modules"
headers="$modules/${PKG_HEADERS%@*}/$HEADERS_DIR"
[[ -f "$headers/onnxruntime_c_api.h" ]] ||
    die "onnxruntime_c_api.h not found in ${PKG_HEADERS}"

if [[ $arch == "x86_64" ]]; then
    libdir="$modules/${PKG_HEADERS%@*}/$X64_DIR"
    pkg_lib="$PKG_HEADERS"
else
    libdir="$modules/${PKG_ARM64%@*}/$ARM64_DIR"
    pkg_lib="$PKG_ARM64"
fi
lib=""
for name in libonnxruntime.so libonnxruntime.so.1 libonnxruntime.so.1.*; do
    if [[ -f "$libdir/$name" ]]; then
        lib="$libdir/$name"
        break
    fi
done
[[ -n "$lib" ]] || die "libonnxruntime.so not found in $pkg_lib"
if [[ "$(head -c 4 "$lib" | od -An -c | tr -d ' ')" != '177ELF' ]]; then
    die "'$lib' is not an ELF file (a Git LFS pointer?)"
fi

mkdir -p "$staging/include" "$staging/lib"
cp "$headers"/*.h "$staging/include/"
cp -L "$lib" "$staging/lib/libonnxruntime.so"
# The library's SONAME is libonnxruntime.so.1: programs linked against it
# look for that name at run time.
ln -s libonnxruntime.so "$staging/lib/libonnxruntime.so.1"
if [[ -f "$libdir/libonnxruntime_providers_shared.so" ]]; then
    cp -L "$libdir/libonnxruntime_providers_shared.so" "$staging/lib/"
fi
for doc in LICENSE ThirdPartyNotices.txt; do
    if [[ -f "$modules/${PKG_HEADERS%@*}/$doc" ]]; then
        cp "$modules/${PKG_HEADERS%@*}/$doc" "$staging/"
    fi
done
printf '%s\n' "$stamp_text" >"$staging/.stamp"

rm -rf "$dest"
mv "$staging" "$dest"
say "installed ONNX Runtime $lib_version ($arch) in $dest"
