#!/bin/bash
# Measure a cold `runner-scaler once` against the original tool's algorithm
# (issue 14, target 4), on the same local fixtures: moto's server as AWS
# (the original's secret and group) and a fake CircleCI runner API (four
# jobs waiting, one running), both on loopback. Each run is a fresh
# process with an empty compile cache; its CPU time (user + system) and
# peak RSS come from wait4's rusage of that process alone (forked by a
# small C program, scripts/cold-once/spawn.c, which says why). Variants:
#
#   original            the original's algorithm in Python (boto3, urllib3;
#                       scripts/cold-once/original_lambda.py), one invocation
#   once                runner-scaler once, built-in `queue`, the original's
#                       five variables              target: CPU <= 1/50 of original
#   once --precompiled  the same with a WebAssembly policy loaded from
#                       `policy precompile` output  target: CPU <= 1/40 of original
#   once, WASM compiled the same policy compiled at start, for reference
#
# Prints the medians of RUNS runs each and each ratio next to its target.
# The runs of one variant follow each other (ORDER=interleaved: one of each
# in turn, so that each run starts with the caches the previous variant's
# left, most often the Python one's: slower, and closer to a cron job's).
#
#   scripts/measure-cold-once.sh
#   RUNS=31 POLICY=business-hours scripts/measure-cold-once.sh
#   ORDER=interleaved scripts/measure-cold-once.sh
#   BINARY=/path/to/runner-scaler VARIANTS=original,once,compiled scripts/measure-cold-once.sh
#   FIXTURES=1 scripts/measure-cold-once.sh   # fixtures only, for strace/perf
#
# The binary is a release build (built if missing; the figures mean nothing
# in debug), or BINARY. The policy is target/policies/$POLICY.wasm
# (queue-depth: the original's rule as a policy), or
# $RUNNER_SCALER_TEST_POLICIES/$POLICY.wasm. Needs python3 with boto3 and
# moto's server (`cargo xtask test` installs them). The fixtures' own CPU is
# not counted; the machine's load is: run it on a quiet machine.
#
# Measured on 2 vCPUs shared with another engineer's builds (queue-depth;
# medians; CPU ms, its ratio to the original's, peak RSS MiB). The small
# process suffers most from a busy machine: compare figures of one sitting.
#
#   same sitting, load ~2.3, RUNS=31, blocks   before (421b3ab)   after (e4ce35c)
#   original                                   327.5        46    306.8        46
#   once                                        13.5 1/24   21      9.5 1/32   18
#   once --precompiled                          (no flag)          11.7 1/26   22
#   once, WASM compiled                         49.6 1/7    29     42.6 1/7    29
#   after, the bundle alone (as now): once 7.9 1/39, --precompiled 9.3 1/33
#
#   quiet, load < 1, RUNS=21                   before             after
#   interleaved: original                      351.6              319.0
#                once                           17.9 1/20           9.8 1/33
#                once --precompiled                                10.3 1/31
#   blocks:      original                                         315.6
#                once                                               6.9 1/46
#                once --precompiled                                 8.8 1/36
#   blocks, the bundle alone (as now): once 5.9 1/57, --precompiled 7.5 1/45
#
# Reading the system's CA store as Debian lays it out (the bundle, then
# each certificate again through /etc/ssl/certs) cost about 2.9 ms of a
# 7.5 ms cold `once` (perf stat, quiet), 2 ms of it the directory. The
# scaler now reads the bundle alone (host/src/ca_certificates.rs): 8.4 ms
# 1/38 -> 6.0 ms 1/51 (built-in), 9.6 ms 1/33 -> 7.7 ms 1/40 (precompiled),
# RUNS=21, quiet. And it reads no certificate at all until a request is
# https (host/src/aws.rs, ByScheme): these fixtures are plain http, as the
# original's algorithm (botocore loads its CA bundle only for https) sees
# them too. Quiet (load < 1), RUNS=31, blocks unless said:
#
#   original 286.5   once 4.6 1/62   --precompiled 6.4 1/44
#   original 293.5   once 5.4 1/54   --precompiled 7.0 1/42
#   ORDER=interleaved, RUNS=21:
#   original 299.5   once 6.7 1/44   --precompiled 7.7 1/39
#
# The targets hold for runs of one kind in a row (as hyperfine times them),
# not for interleaved ones, which start on the caches the Python run left;
# a cron job's runs, a minute apart among other work, start colder still.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export RUNS="${RUNS:-15}" POLICY="${POLICY:-queue-depth}"
python3 -c 'import boto3, urllib3' 2>/dev/null \
  || { echo "needs python3 with boto3 (python3 -m pip install boto3)" >&2; exit 1; }
command -v cc >/dev/null || { echo "needs a C compiler (cc) for scripts/cold-once/spawn.c" >&2; exit 1; }
command -v moto_server >/dev/null \
  || { echo "needs moto's server (python3 -m pip install 'moto[server]')" >&2; exit 1; }
policies="${RUNNER_SCALER_TEST_POLICIES:-$root/target/policies}"
[ -f "$policies/$POLICY.wasm" ] || cargo xtask policies
binary="${BINARY:-$root/target/release/runner-scaler}"
[ -n "${BINARY:-}" ] || [ -x "$binary" ] || cargo build --release -p runner-scaler
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
if [[ "${VARIANTS:-precompiled}" == *precompiled* ]]; then
  "$binary" policy precompile "$policies/$POLICY.wasm" --out "$scratch/precompiled" >/dev/null
fi
args=(--binary "$binary" --policy "$policies/$POLICY.wasm" --precompiled "$scratch/precompiled" --runs "$RUNS")
[ -z "${VARIANTS:-}" ] || args+=(--variants "$VARIANTS")
[ -z "${ORDER:-}" ] || args+=(--order "$ORDER")
[ -z "${FIXTURES:-}" ] || args+=(--fixtures)
python3 scripts/cold-once/measure.py "${args[@]}"
