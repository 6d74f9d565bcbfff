#!/bin/bash
# Measure the Lambda mode's cold start: process start -> first response
# posted to a loopback fake of the Runtime API (host/tests/it/support/
# fake_lambda.rs), with moto as AWS and the fake CircleCI API, and the peak
# RSS of the whole process (/usr/bin/time -v). Three variants: the built-in
# `queue` rule, a WebAssembly policy compiled at start (an empty /tmp cache,
# as on a fresh Lambda sandbox), and the same policy loaded precompiled.
# Prints the medians of RUNS runs each.
#
#   RUNS=7 POLICY=business-hours scripts/measure-lambda-cold-start.sh
#   BOOTSTRAP=path/to/bootstrap scripts/measure-lambda-cold-start.sh
#
# The binary measured is a release build of runner-scaler (the figures mean
# nothing in debug), or BOOTSTRAP: e.g. a bundle's bootstrap, unzipped from
# scripts/package-lambda.sh's zip, which is what Lambda runs (the harness
# around it is then a debug build: it only waits). Needs moto (`cargo xtask
# test` installs it) and /usr/bin/time. The absolute times include moto's
# latency (a Python server: the secret, describe and write calls), which is
# the same for every variant; compare the variants with each other.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export RUNS="${RUNS:-7}" POLICY="${POLICY:-business-hours}"
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
[ -f "target/policies/$POLICY.wasm" ] || cargo xtask policies
profile=(--release)
if [ -n "${BOOTSTRAP:-}" ]; then
  BOOTSTRAP="$(cd "$(dirname "$BOOTSTRAP")" && pwd)/$(basename "$BOOTSTRAP")"
  export BOOTSTRAP
  profile=()
fi
cargo test "${profile[@]}" -p runner-scaler --test it -- \
  --ignored --exact lambda::measure_cold_start --nocapture --test-threads 1
