# Sourced by the image test scripts: `expect DESCRIPTION COMMAND...` runs one check, prints ok or
# counts a failure under $test_name, and goes on; the script ends with `[ "$failures" = 0 ]`.
# shellcheck shell=bash
failures=0
fail() { echo "${test_name:?}: FAILED: $*" >&2 && failures=$((failures + 1)); }
expect() {
    local what=$1
    shift
    if "$@"; then echo "ok: $what"; else fail "$what"; fi
}
