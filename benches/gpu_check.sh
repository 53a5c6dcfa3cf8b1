#!/usr/bin/env bash
# The GPU check anyone can rerun, on whatever adapter wgpu finds (a real GPU, or lavapipe):
# builds the release examples, then prints one table —
#   sgemm at the largest size measured (GFLOP/s and % of the adapter's measured FMA peak),
#   the DeepConvNet step's per-step accounting and GPU time per kernel (timestamp queries),
#   vgg_like training images/s in f32 and mixed precision at batch 100 and 1000.
# Everything the examples print goes to $OUT (default target/gpu-check/) for the details.
#
#   bash benches/gpu_check.sh            # full sizes (sgemm up to 4096; minutes on a GPU)
#   bash benches/gpu_check.sh --quick    # small sizes, for a software adapter (lavapipe)
#
# The kit in ../shared/device/ runs the same examples on a lent GPU next to PyTorch-CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option '$a' (use --quick or nothing)" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-target/gpu-check}
mkdir -p "$OUT"
echo "building the release examples..." >&2
cargo build --release --quiet --example devices --example backend_compare --example vgg_like
bin=target/release/examples

if ! "$bin/devices" > "$OUT/devices.txt" 2>&1 || ! grep -q '^gpu:' "$OUT/devices.txt"; then
  cat "$OUT/devices.txt" >&2
  echo "gpu_check.sh: no GPU adapter found (see above); nothing to check" >&2
  exit 1
fi
adapter=$(grep -m1 '^gpu:' "$OUT/devices.txt")
echo "adapter: $adapter" >&2

if [ "$quick" = 1 ]; then
  bc_flags=(--quick); limit=(--train-limit 1000 --test-limit 500); limit_b1000=(--train-limit 2000 --test-limit 500)
else
  bc_flags=(); limit=(--train-limit 20000 --test-limit 2000); limit_b1000=(--train-limit 20000 --test-limit 2000)
fi

echo "backend_compare (matmul, step with kernel times)..." >&2
"$bin/backend_compare" --device gpu "${bc_flags[@]}" --sections matmul,step --gpu-timestamps \
  > "$OUT/backend_compare.txt" 2>&1

# The largest sgemm row: "| backend | f32 | matmul N³ | ms | X GFLOP/s | P % | … |".
sgemm=$(grep '| f32 | matmul ' "$OUT/backend_compare.txt" | tail -n 1 \
  | awk -F'|' '{gsub(/^ +| +$/, "", $4); gsub(/^ +| +$/, "", $6); gsub(/^ +| +$/, "", $7); print $4 ": " $6 " (" $7 " of peak)"}')
peak=$(grep -m1 'FMA peak' "$OUT/backend_compare.txt" | sed 's/.*FMA peak/FMA peak/')
accounting=$(grep -m1 'dispatches' "$OUT/backend_compare.txt" | sed 's/^.* f32: //')

vgg() { # name, then vgg_like flags; prints the images/s of its summary line
  local name=$1; shift
  echo "vgg_like $name..." >&2
  if "$bin/vgg_like" --device gpu --epochs 1 --no-progress "$@" > "$OUT/vgg_like_$name.txt" 2>&1; then
    grep -m1 '^summary:' "$OUT/vgg_like_$name.txt" | grep -o '[0-9.]* images/s' || echo "no summary line"
  else
    echo "failed: $(tail -n 1 "$OUT/vgg_like_$name.txt")"
  fi
}
f32_100=$(vgg f32_b100 "${limit[@]}")
mixed_100=$(vgg mixed_b100 --precision mixed "${limit[@]}")
f32_1000=$(vgg f32_b1000 --batch-size 1000 "${limit_b1000[@]}")
mixed_1000=$(vgg mixed_b1000 --precision mixed --batch-size 1000 "${limit_b1000[@]}")

cat <<EOF

wgnn GPU check, $(date -u +%F), on $adapter
$peak

| check | result |
|---|---|
| sgemm (largest size run) | $sgemm |
| DeepConvNet step, batch 100 | $accounting |
| vgg_like f32, batch 100 | $f32_100 |
| vgg_like mixed, batch 100 | $mixed_100 |
| vgg_like f32, batch 1000 | $f32_1000 |
| vgg_like mixed, batch 1000 | $mixed_1000 |

EOF
sed -n '/^GPU time per kernel/,$p' "$OUT/backend_compare.txt"
[ -n "$(sed -n '/^GPU time per kernel/p' "$OUT/backend_compare.txt")" ] \
  || grep -m1 'no timestamp queries' "$OUT/backend_compare.txt" || true
echo "details in $OUT/"
