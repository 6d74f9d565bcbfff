#!/bin/bash
# Build the Lambda deployment zip: `bootstrap` (runner-scaler itself), the
# configuration if any, the policies, and their code precompiled for the
# function's architecture. docs/deploying.md explains the whole route;
# scripts/deploy.sh runs this, uploads the zip and deploys the stack.
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
#             every Rust example in policies/, built by `cargo xtask policies`
#             (the Python and JavaScript ports carry an interpreter each,
#             12-19 MB: ship one with --policy when a pool uses it).
# --binary    use this bootstrap instead of building one (a binary built
#             elsewhere; the tests pass a stand-in). It is checked as a built
#             one is.
# --no-strip  keep the bootstrap's symbol table (by default it is stripped,
#             a smaller zip; panics then show no function names).
# --out       the zip (default target/lambda/runner-scaler-lambda-ARCH.zip).
#
# The bootstrap is built with cargo-zigbuild, which links with zig against
# glibc 2.34, the glibc of Amazon Linux 2023 (provided.al2023), for either
# architecture on any Linux machine: no rustup target, no cross gcc, no
# container. The script installs it from PyPI when missing (with zig, as the
# `ziglang` package). For arm64 it needs Rust's standard library for
# aarch64: rustup's, when that target is installed; otherwise Debian's
# rustc-web builds it from source (build-std, rust-web-src; installed with
# apt-get when missing), which compiles the whole dependency tree with that
# compiler in target/debian-rustc: minutes, see docs/deploying.md.
#
# Every bootstrap is checked before it is zipped: its ELF machine matches
# --arch, and it requires no GLIBC_ symbol version newer than 2.34 (readelf),
# so a dependency that needs a newer glibc fails here, not on AWS.
#
# Precompiling: `runner-scaler policy precompile --target ARCH` runs on this
# machine. For its own architecture the bootstrap does it; for the other one
# the script builds a host runner-scaler with `--features cross-arch` (or set
# PRECOMPILER=/path/to/runner-scaler).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
arch=arm64
config=""
binary=""
out=""
precompile=yes
strip_symbols=yes
policies=()
# Amazon Linux 2023's glibc: the newest symbol version the bootstrap may need.
GLIBC_MAX=2.34
# The tools, pinned: a new zig could change what the binary links against.
ZIGBUILD_PIN="cargo-zigbuild==0.24.1"
ZIG_PIN="ziglang==0.17.1"

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
  arm64|aarch64) arch=arm64; cpu=aarch64; elf_machine=AArch64 ;;
  x86_64|amd64|x86-64) arch=x86_64; cpu=x86_64; elf_machine="X86-64" ;;
  *) die "--arch must be arm64 or x86_64, not $arch" ;;
esac
triple="$cpu-unknown-linux-gnu"
host_cpu="$(uname -m)"
[ "$host_cpu" = arm64 ] && host_cpu=aarch64
target_dir="${CARGO_TARGET_DIR:-$root/target}"
out="${out:-$target_dir/lambda/runner-scaler-lambda-$arch.zip}"

# `pip install`, also on a Debian python that refuses installs outside a
# venv (PEP 668) unless told; bounded, as a registry may not answer.
pip_install() {
  echo "==> pip install $*"
  timeout 900 python3 -m pip install --quiet "$@" 2>/dev/null \
    || timeout 900 python3 -m pip install --quiet --break-system-packages "$@" \
    || die "cannot install $* from PyPI"
}

ensure_zigbuild() {
  if cargo-zigbuild --version >/dev/null 2>&1 && python3 -m ziglang version >/dev/null 2>&1; then
    return
  fi
  pip_install "$ZIGBUILD_PIN" "$ZIG_PIN"
  cargo-zigbuild --version >/dev/null 2>&1 \
    || die "cargo-zigbuild is installed but cargo cannot run it: is pip's script directory on PATH?"
}

# The flags that give cargo a standard library for $triple.
std_flags=()
find_std() {
  local sysroot
  sysroot="$(rustc --print sysroot)"
  if [ -d "$sysroot/lib/rustlib/$triple/lib" ]; then
    return
  fi
  # Never `rustup target add`: without internet it hangs.
  if [ ! -x /usr/bin/rustc ] || [ ! -d /usr/lib/rustlib/src/rust/library ]; then
    echo "==> apt-get install rustc-web rust-web-src (Rust's library source, to build std for $triple)"
    timeout 600 apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq rustc-web rust-web-src \
      || die "cannot install rustc-web and rust-web-src; or install rustup's $triple target"
  fi
  echo "==> no $triple standard library installed: building it from Debian's library source (build-std)"
  export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
  # Its own target dir: the two compilers never rebuild each other's output.
  export CARGO_TARGET_DIR="$target_dir/debian-rustc"
  std_flags=(-Zbuild-std=std,panic_unwind)
}

# Fail unless $1 is an ELF for $elf_machine needing glibc <= $GLIBC_MAX.
check_binary() {
  local file="$1" machine newest
  command -v readelf >/dev/null || die "readelf is missing (apt-get install binutils)"
  machine="$(readelf -h "$file" 2>/dev/null | sed -n 's/^ *Machine: *//p')"
  case "$machine" in
    *"$elf_machine"*) ;;
    *) die "$file is not an $arch ELF binary (machine: ${machine:-not ELF})" ;;
  esac
  newest="$(readelf -V --wide "$file" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)"
  if [ -n "$newest" ] && [ "$(printf '%s\n%s\n' "$newest" "$GLIBC_MAX" | sort -V | tail -n 1)" != "$GLIBC_MAX" ]; then
    die "$file requires GLIBC_$newest, but provided.al2023 has glibc $GLIBC_MAX: it would fail on AWS with \`GLIBC_$newest not found\`. Build it with this script (zig links against $GLIBC_MAX), or on a system whose glibc is no newer"
  fi
  echo "==> $(basename "$file"): $machine, needs glibc ${newest:-(none)} <= $GLIBC_MAX"
}

# 1. The bootstrap.
if [ -z "$binary" ]; then
  ensure_zigbuild
  find_std
  strip_profile=symbols
  [ "$strip_symbols" = no ] && strip_profile=none
  echo "==> cargo zigbuild --release --target $triple.$GLIBC_MAX"
  (cd "$root" && CARGO_PROFILE_RELEASE_STRIP="$strip_profile" \
    cargo zigbuild --release --target "$triple.$GLIBC_MAX" "${std_flags[@]}" \
      -p runner-scaler --bin runner-scaler)
  binary="${CARGO_TARGET_DIR:-$target_dir}/$triple/release/runner-scaler"
fi
[ -f "$binary" ] || die "no bootstrap at $binary"
check_binary "$binary"

# 2. The policies.
if [ ${#policies[@]} -eq 0 ]; then
  for dir in "$root"/policies/*/; do
    [ -f "$dir/Cargo.toml" ] || continue
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
    if [ "$cpu" = "$host_cpu" ]; then
      precompiler="$stage/bootstrap"
    else
      echo "==> cargo build --release --features cross-arch (a host runner-scaler that compiles for $cpu)"
      (cd "$root" && env -u RUSTC -u RUSTC_BOOTSTRAP -u CARGO_TARGET_DIR \
        cargo build --release -p runner-scaler --bin runner-scaler --features cross-arch)
      precompiler="$target_dir/release/runner-scaler"
    fi
  fi
  config_args=()
  [ -n "$config" ] && config_args=(--config "$stage/runner-scaler.toml")
  echo "==> runner-scaler policy precompile --target $cpu"
  env -u AWS_LAMBDA_RUNTIME_API "$precompiler" policy precompile "$stage"/policies/*.wasm \
    --target "$cpu" --out "$stage/precompiled" "${config_args[@]}"
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
echo "==> $out ($arch, $(du -k "$out" | cut -f1) KiB)"
(cd "$stage" && find . -type f | sed 's|^\./|    |' | sort)
echo "Deploy it: scripts/deploy.sh (docs/deploying.md)"
