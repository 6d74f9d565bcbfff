#!/bin/bash
# Build the Lambda deployment zip: `bootstrap` (runner-scaler itself), the
# configuration if any, the policies, and their code precompiled for the
# function's architecture. docs/deploying.md explains the whole route.
#
#   scripts/package-lambda.sh [--arch arm64|x86_64] [--config FILE]
#                             [--policy FILE.wasm]... [--binary PATH]
#                             [--no-precompile] [--no-strip] [--out ZIP]
#
# --arch      the function's architecture (default arm64, as the template).
# --config    a runner-scaler.toml to ship; it becomes runner-scaler.toml
#             beside the bootstrap (set RUNNER_SCALER_CONFIG=runner-scaler.toml)
#             and must name its policies as policies/NAME.wasm.
# --policy    a policy to ship as policies/NAME.wasm (repeatable). Default:
#             every example in policies/, built by `cargo xtask policies`.
# --binary    use this bootstrap instead of building one (a binary built
#             elsewhere, e.g. on an arm64 machine; the tests pass a stand-in).
# --no-strip  keep the bootstrap's symbol table (by default it is stripped,
#             a smaller zip; panics then show no function names).
# --out       the zip (default target/lambda/runner-scaler-lambda-ARCH.zip).
#
# Building the bootstrap:
# - with cargo-lambda installed: `cargo lambda build --release --arm64`
#   (or --x86-64). It cross-compiles through zig and links against the
#   glibc of Amazon Linux 2023 — the recommended route.
# - without it: `cargo build --release --target <arch>-unknown-linux-gnu`.
#   For arm64 on an x86_64 machine that needs `rustup target add
#   aarch64-unknown-linux-gnu` and a cross linker (Debian:
#   gcc-aarch64-linux-gnu, then CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=
#   aarch64-linux-gnu-gcc). For the host's own architecture it is a plain
#   release build. Either way the binary links against the build machine's
#   glibc: it runs on provided.al2023 (glibc 2.34) only if built on a system
#   whose glibc is no newer (e.g. in an amazonlinux:2023 container).
#
# Precompiling: `runner-scaler policy precompile --target ARCH` must run on
# the build machine. For the host's architecture the bootstrap does it; for
# the other one the script builds a host runner-scaler with
# `--features cross-arch` (or set PRECOMPILER=/path/to/runner-scaler).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
arch=arm64
config=""
binary=""
out=""
precompile=yes
strip_symbols=yes
policies=()

die() { echo "package-lambda: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="${2:?--arch needs arm64 or x86_64}"; shift 2 ;;
    --config) config="${2:?--config needs a file}"; shift 2 ;;
    --policy) policies+=("${2:?--policy needs a .wasm file}"); shift 2 ;;
    --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
    --out) out="${2:?--out needs a path}"; shift 2 ;;
    --no-precompile) precompile=no; shift ;;
    --no-strip) strip_symbols=no; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

case "$arch" in
  arm64|aarch64) arch=arm64; wasm_arch=aarch64; triple=aarch64-unknown-linux-gnu; lambda_flag=--arm64 ;;
  x86_64|amd64|x86-64) arch=x86_64; wasm_arch=x86_64; triple=x86_64-unknown-linux-gnu; lambda_flag=--x86-64 ;;
  *) die "--arch must be arm64 or x86_64, not $arch" ;;
esac
host_arch="$(uname -m)"
[ "$host_arch" = arm64 ] && host_arch=aarch64
target_dir="${CARGO_TARGET_DIR:-$root/target}"
out="${out:-$target_dir/lambda/runner-scaler-lambda-$arch.zip}"

# 1. The bootstrap.
if [ -z "$binary" ]; then
  if cargo lambda --version >/dev/null 2>&1; then
    echo "==> cargo lambda build --release $lambda_flag"
    (cd "$root" && cargo lambda build --release "$lambda_flag" -p runner-scaler --bin runner-scaler)
    binary="$target_dir/lambda/runner-scaler/bootstrap"
  elif [ "$wasm_arch" = "$host_arch" ]; then
    echo "==> cargo build --release (host architecture $host_arch; cargo-lambda not installed)"
    echo "    note: links against this machine's glibc; see the header of this script"
    (cd "$root" && cargo build --release -p runner-scaler --bin runner-scaler)
    binary="$target_dir/release/runner-scaler"
  else
    echo "==> cargo build --release --target $triple (cargo-lambda not installed)"
    echo "    needs: rustup target add $triple, and a linker for it, e.g."
    echo "    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc"
    (cd "$root" && cargo build --release --target "$triple" -p runner-scaler --bin runner-scaler) \
      || die "cross build for $triple failed: install cargo-lambda (cargo install cargo-lambda; it needs zig), or the target and linker above, or build on an $arch machine and pass --binary"
    binary="$target_dir/$triple/release/runner-scaler"
  fi
fi
[ -f "$binary" ] || die "no bootstrap at $binary"

# 2. The policies.
if [ ${#policies[@]} -eq 0 ]; then
  for dir in "$root"/policies/*/; do
    name="$(basename "$dir")"
    wasm="$target_dir/policies/$name.wasm"
    if [ ! -f "$wasm" ]; then
      echo "==> cargo xtask policies ($wasm is missing)"
      (cd "$root" && cargo xtask policies)
    fi
    policies+=("$wasm")
  done
fi

# 3. The bundle.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
install -m 755 "$binary" "$stage/bootstrap"
if [ "$strip_symbols" = yes ]; then
  # The host's strip handles the host's architecture; for the other one use
  # the cross binutils' strip if present, else ship it unstripped.
  stripper="strip"
  [ "$wasm_arch" != "$host_arch" ] && stripper="$wasm_arch-linux-gnu-strip"
  if command -v "$stripper" >/dev/null && "$stripper" "$stage/bootstrap" 2>/dev/null; then
    echo "==> stripped the bootstrap ($stripper)"
  else
    echo "    note: bootstrap not stripped ($stripper missing or failed)"
  fi
fi
mkdir -p "$stage/policies"
for policy in "${policies[@]}"; do
  [ -f "$policy" ] || die "no policy at $policy"
  install -m 644 "$policy" "$stage/policies/$(basename "$policy")"
done
if [ -n "$config" ]; then
  [ -f "$config" ] || die "no configuration at $config"
  install -m 644 "$config" "$stage/runner-scaler.toml"
fi

# 4. Precompiled code, for the function's architecture, keyed as its engine looks it up.
if [ "$precompile" = yes ] && [ ${#policies[@]} -gt 0 ]; then
  precompiler="${PRECOMPILER:-}"
  if [ -z "$precompiler" ]; then
    if [ "$wasm_arch" = "$host_arch" ]; then
      precompiler="$stage/bootstrap"
    else
      echo "==> cargo build --release --features cross-arch (a host runner-scaler that compiles for $wasm_arch)"
      (cd "$root" && cargo build --release -p runner-scaler --bin runner-scaler --features cross-arch)
      precompiler="$target_dir/release/runner-scaler"
    fi
  fi
  config_args=()
  [ -n "$config" ] && config_args=(--config "$stage/runner-scaler.toml")
  echo "==> runner-scaler policy precompile --target $wasm_arch"
  env -u AWS_LAMBDA_RUNTIME_API "$precompiler" policy precompile "$stage"/policies/*.wasm \
    --target "$wasm_arch" --out "$stage/precompiled" "${config_args[@]}"
fi

# 5. The zip (bootstrap keeps its executable bit: Lambda runs it as is).
mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
rm -f "$out"
if command -v zip >/dev/null; then
  (cd "$stage" && zip -q -X -r "$out" .)
else
  (cd "$stage" && python3 -m zipfile -c "$out" ./*)
fi
echo "==> $out ($arch)"
(cd "$stage" && find . -type f | sed 's|^\./|    |' | sort)
echo "Upload it and deploy: docs/deploying.md"
