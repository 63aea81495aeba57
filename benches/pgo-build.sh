#!/usr/bin/env bash
# A profile-guided release build of berth, trained on the peers harness's
# own load (the keep-alive hop, `--quick`), then measured by that harness.
#
#   bash benches/pgo-build.sh            # build; the binary is target/pgo/release/berth
#   bash benches/pgo-build.sh --measure  # and run `peers -- --quick` on it
#
# Needs llvm-profdata of the LLVM major rustc uses (`rustc -vV`): Debian's
# llvm-<N> package, or rustup's llvm-tools component. Not needed for a
# normal build: PGO is optional (benches/README.md has what it gained).
set -euo pipefail
cd "$(dirname "$0")/.."

llvm_major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
profdata=${LLVM_PROFDATA:-}
for candidate in "$profdata" "llvm-profdata-$llvm_major" "/usr/lib/llvm-$llvm_major/bin/llvm-profdata" \
  "$(ls "$(rustc --print sysroot)"/lib/rustlib/*/bin/llvm-profdata 2>/dev/null | head -1)"; do
  if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1; then
    profdata=$candidate
    break
  fi
done
if ! command -v "$profdata" >/dev/null 2>&1; then
  echo "llvm-profdata for LLVM $llvm_major not found: apt-get install llvm-$llvm_major" \
    "(or set LLVM_PROFDATA)" >&2
  exit 2
fi

raw=$PWD/target/pgo/raw
merged=$PWD/target/pgo/berth.profdata
rm -rf "$raw"
mkdir -p "$raw"

echo "1/3 instrumented build of berth, trained on the keep-alive hop" >&2
RUSTFLAGS="-Cprofile-generate=$raw" CARGO_TARGET_DIR=target/pgo-train \
  cargo build --release --bin berth
# The harness itself stays uninstrumented; only berth writes profiles.
BERTH_BENCH_BIN=$PWD/target/pgo-train/release/berth cargo bench --bench peers -- --quick >/dev/null

echo "2/3 merging $(ls "$raw" | wc -l) profiles" >&2
"$profdata" merge -o "$merged" "$raw"

echo "3/3 optimised build" >&2
use_flags="-Cprofile-use=$merged"
RUSTFLAGS="$use_flags" CARGO_TARGET_DIR=target/pgo cargo build --release --bin berth
echo "built target/pgo/release/berth" >&2

if [ "${1:-}" = "--measure" ]; then
  RUSTFLAGS="$use_flags" CARGO_TARGET_DIR=target/pgo cargo bench --bench peers -- --quick
fi
