#!/usr/bin/env bash
# GPU smoke check: run from the repository root on a machine with a CUDA GPU (about 5 minutes on one A100/H100).
#   1. every registered method, 3 steps per stage at the paper's shapes (BERT-base teacher, 6L-768 student, random
#      weights: no download), in fp32 and bf16 (fp16 too where the GPU has no bf16: what precision = auto picks);
#   2. the engine's CUDA tests (TF32 switches set per call and restored);
#   3. the smoke suite end to end on the GPU (--gpus 1: a job that finds no GPU fails instead of training on CPU),
#      its first job killed (SIGKILL) at step 40 and the run taken up again: the job resumes from its checkpoint,
#      and every record says device cuda and the precision it ran in.
# Exit 0: all passed; anything else: the first failing step's output is above.
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-smoke: torch sees no CUDA GPU here')"
bf16=$(python -c "import torch; print(int(torch.cuda.is_bf16_supported()))")
precisions="fp32 bf16"
[ "$bf16" = 1 ] || precisions="fp32 fp16"
pytest=(python -m pytest -q -p no:xdist -o addopts="-ra")
for precision in $precisions; do
  echo "== every method at the paper's shapes, $precision"
  KDFD_SHAPES_DEVICE=cuda KDFD_SHAPES_PRECISION=$precision KDFD_SHAPES_STEPS=3 \
    "${pytest[@]}" tests/baselines/test_paper_shapes.py
done
echo "== the engine's CUDA tests"
"${pytest[@]}" tests/kdfd/test_engine.py -k cuda
echo "== the smoke suite on the GPU, killed once mid-job and resumed"
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
run=(bench run --suite smoke --tasks synth-pair --results "$results" --gpus 1 --checkpoint-every 10 --no-progress)
KDFD_CRASH_AT=train-step:40 "${run[@]}" && { echo "gpu-smoke: the crash point did not stop the run" >&2; exit 1; }
"${run[@]}"
python - "$results" <<'PY'
import json, pathlib, sys

records = [json.loads(p.read_text()) for p in pathlib.Path(sys.argv[1]).rglob("s[0-9]*-*.json")]
assert len(records) == 4 and all(r["status"] == "done" for r in records), [r.get("error") for r in records]
assert all(r["device"].startswith("cuda") for r in records), {r["device"] for r in records}
assert any(r["resumed_from_step"] for r in records), "no job resumed from its checkpoint"
print("gpu-smoke: 4 records done on", {r["device"] for r in records}, "in", {r["precision"] for r in records},
      "; resumed:", [r["label"] for r in records if r["resumed_from_step"]])
PY
echo "gpu-smoke: passed"
