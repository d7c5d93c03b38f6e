# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash disable=SC2034 # variables for the scripts
#
# Shell functions shared by scripts/install-ort.sh and
# scripts/install-models.sh, which set NAME (the prefix of their messages)
# and then source this file after `set -euo pipefail`:
#
#   NAME=install-xyz
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Sourcing sets repo_root, the repository's top folder.

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# say MSG...: a progress message on stdout.
say() {
    printf '%s: %s\n' "$NAME" "$*"
}

# die MSG...: an error message on stderr, then exit 1.
die() {
    printf '%s: error: %s\n' "$NAME" "$*" >&2
    exit 1
}

# usage: the "Usage:" paragraph of the script's header comment.
usage() {
    sed -n '/^# Usage:/,/^$/{s/^# \{0,1\}//;p}' "$0"
}

# parse_args ARG...: the scripts' command line: sets force to 1 for
# --force (else 0), prints the usage for -h/--help and exits.
parse_args() {
    local arg
    force=0
    for arg in "$@"; do
        case "$arg" in
        --force) force=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument '$arg' (see --help)" ;;
        esac
    done
}

# need_npm WHAT: dies unless the npm client, which fetches WHAT, is there.
need_npm() {
    command -v npm >/dev/null 2>&1 || die "npm is needed to fetch $1"
}
