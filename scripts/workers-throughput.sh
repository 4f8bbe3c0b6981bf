#!/usr/bin/env bash
# Local workers on 2 cores: 1 worker x 2 threads against 2 workers x 1 thread (`bench run --workers`), on glue-cpu's
# MRPC jobs, from the repository root on an otherwise idle machine (about 3 hours on 2 cores: not a test).
#   scripts/workers-throughput.sh [--seeds 1 2] [--methods finetune vanilla-kd kdfd]
# The shared MRPC teacher is trained once first and copied into both results roots, so that both arms time the same
# student jobs; each arm's wall-clock seconds and jobs per hour go to reports/speed/workers.md (appended).
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=(1 2); methods=(finetune vanilla-kd kdfd)
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) shift; seeds=(); while [ $# -gt 0 ] && [[ "$1" != --* ]]; do seeds+=("$1"); shift; done ;;
    --methods) shift; methods=(); while [ $# -gt 0 ] && [[ "$1" != --* ]]; do methods+=("$1"); shift; done ;;
    *) echo "workers-throughput: unknown argument $1 (allowed: --seeds, --methods)" >&2; exit 2 ;;
  esac
done
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
common=(--suite glue-cpu --tasks mrpc --no-progress)
OMP_NUM_THREADS=2 bench run "${common[@]}" --seeds 1 --methods vanilla-kd --results "$root/base" >/dev/null
jobs=$(bench run "${common[@]}" --seeds "${seeds[@]}" --methods "${methods[@]}" --results "$root/base" --dry-run \
       | sed -n 's/.*: [0-9]* done, \([0-9]*\) to run.*/\1/p')
arm() {  # name, workers
  cp -a "$root/base" "$root/$1"
  local start=$(date +%s.%N)
  OMP_NUM_THREADS=2 bench run "${common[@]}" --seeds "${seeds[@]}" --methods "${methods[@]}" --results "$root/$1" \
    --workers "$2" >/dev/null
  python -c "import sys; a, b, n = map(float, sys.argv[1:]); print(f'{b - a:.0f} {3600 * n / (b - a):.2f}')" \
    "$start" "$(date +%s.%N)" "$jobs"
}
read -r one_s one_rate < <(arm one 1)
read -r two_s two_rate < <(arm two 2)
mkdir -p reports/speed
{
  echo
  echo "## Local workers, $(date -u +%Y-%m-%d) on $(nproc) cores ($(git rev-parse --short HEAD))"
  echo
  echo "glue-cpu MRPC, seeds ${seeds[*]}, methods ${methods[*]}: $jobs student jobs (the teacher trained beforehand)."
  echo
  echo "| arm | wall seconds | jobs per hour |"
  echo "| --- | ---: | ---: |"
  echo "| 1 worker x 2 threads | $one_s | $one_rate |"
  echo "| 2 workers x 1 thread | $two_s | $two_rate |"
} >> reports/speed/workers.md
tail -n 8 reports/speed/workers.md
