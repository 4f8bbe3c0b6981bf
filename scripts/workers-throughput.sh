#!/usr/bin/env bash
# Local workers on this machine's cores: 1 worker x all threads against 2 workers x half the threads each
# (`bench run --workers`), on an otherwise idle machine, from the repository root. Not a test: minutes to hours.
#   scripts/workers-throughput.sh [--suite glue-cpu] [--tasks mrpc] [--seeds 1 2 3 4] [--methods finetune]
# With the defaults: glue-cpu's four MRPC fine-tuning jobs (no teacher: both arms time the same student jobs),
# about 25 minutes on 2 cores. `--suite smoke` (its 12 jobs: teachers first, then their students) takes a few.
# A method that distils trains its teacher once first, copied into both arms' results roots. Each arm's wall-clock
# seconds and jobs per hour, and whether both arms wrote the same metrics, go to reports/speed/workers.md
# (appended).
set -euo pipefail
cd "$(dirname "$0")/.."
suite=glue-cpu; tasks=(); seeds=(); methods=()
list() { local -n into=$1; into=(); shift; for x in "$@"; do [[ "$x" == --* ]] && break; into+=("$x"); done; }
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) suite="$2"; shift 2 ;;
    --tasks) list tasks "${@:2}"; shift $((1 + ${#tasks[@]})) ;;
    --seeds) list seeds "${@:2}"; shift $((1 + ${#seeds[@]})) ;;
    --methods) list methods "${@:2}"; shift $((1 + ${#methods[@]})) ;;
    *) echo "workers-throughput: unknown argument $1 (allowed: --suite, --tasks, --seeds, --methods)" >&2; exit 2 ;;
  esac
done
if [ "$suite" = glue-cpu ]; then  # the default measurement: the four MRPC fine-tuning jobs
  [ ${#tasks[@]} -gt 0 ] || tasks=(mrpc); [ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3 4)
  [ ${#methods[@]} -gt 0 ] || methods=(finetune)
fi
threads=$(nproc)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
common=(--suite "$suite" --no-progress)
[ ${#tasks[@]} -eq 0 ] || common+=(--tasks "${tasks[@]}")
[ ${#seeds[@]} -eq 0 ] || common+=(--seeds "${seeds[@]}")
[ ${#methods[@]} -eq 0 ] || common+=(--methods "${methods[@]}")
mkdir -p "$root/base"
if [ "$suite" != smoke ] && [ "${methods[*]}" != finetune ]; then  # the shared teachers, outside the timing
  OMP_NUM_THREADS=$threads bench run "${common[@]}" --methods vanilla-kd --results "$root/base" >/dev/null 2>&1
  find "$root/base" -path '*/vanilla-kd/*' -delete
fi
jobs=$(bench run "${common[@]}" --results "$root/base" --dry-run | sed -n 's/.*: [0-9]* done, \([0-9]*\) to run.*/\1/p')
arm() {  # name, workers: prints wall seconds and jobs per hour
  cp -a "$root/base" "$root/$1"
  local start end
  start=$(date +%s.%N)
  OMP_NUM_THREADS=$threads bench run "${common[@]}" --results "$root/$1" --workers "$2" >"$root/$1.log" 2>&1
  end=$(date +%s.%N)
  python -c "import sys; a, b, n = map(float, sys.argv[1:]); print(f'{b - a:.0f} {3600 * n / (b - a):.2f}')" \
    "$start" "$end" "$jobs"
}
read -r one_s one_rate < <(arm one 1)
read -r two_s two_rate < <(arm two 2)
same=$(python - "$root/one" "$root/two" <<'PY'
import json, subprocess, sys
def rows(root):  # each record's dev metrics, by job id, from `bench results`
    out = subprocess.run(["bench", "results", "--results", root, "--format", "jsonl"], capture_output=True,
                         text=True, check=True).stdout
    return {r["id"]: {k: v for k, v in r.items() if k.startswith("metrics.")} for r in map(json.loads, out.splitlines())}
a, b = rows(sys.argv[1]), rows(sys.argv[2])
gap = max((abs(a[i][k] - b[i][k]) for i in a for k in a[i] if a[i][k] is not None), default=0.0)
print(f"the same {len(a)} jobs: {a.keys() == b.keys()}; largest dev-metric difference {gap:.2g}")
PY
)
mkdir -p reports/speed
{
  echo
  echo "## Local workers, $(date -u +%Y-%m-%d) on $threads cores ($(git rev-parse --short HEAD))"
  echo
  echo "\`bench run ${common[*]}\`: $jobs jobs (the teachers of distilling methods trained beforehand, outside the" \
       "timing; smoke's teachers are among its jobs). Both arms: $same (a job on 1 thread sums floats in another order" \
       "than on 2; at equal threads per job the records are identical: tests/benchmarks/test_runner.py)."
  echo
  echo "| arm | wall seconds | jobs per hour |"
  echo "| --- | ---: | ---: |"
  echo "| 1 worker x $threads threads | $one_s | $one_rate |"
  echo "| 2 workers x $((threads / 2)) thread(s) | $two_s | $two_rate |"
} >> reports/speed/workers.md
tail -n 9 reports/speed/workers.md
