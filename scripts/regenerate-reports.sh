#!/usr/bin/env bash
# Regenerate every committed report from its committed records and compare it with the committed one, byte for byte
# apart from the line that says when it was generated (report.md's third line). Exit 1 on any difference.
#
#   scripts/regenerate-reports.sh            # check: into a temporary folder, then diff
#   scripts/regenerate-reports.sh --write    # regenerate in place (then commit what changed)
#   scripts/regenerate-reports.sh [--write] glue-cpu protocol-rte ...   # only these reports
set -euo pipefail
cd "$(dirname "$0")/.."

write=0
if [ "${1:-}" = "--write" ]; then write=1; shift; fi

# name -> the report command's arguments (reports/README.md and reports/protocol/README.md give the same)
declare -A args=(
  [glue-cpu]="--suite glue-cpu --results reports/glue-cpu/results --sweeps sweep-dim-cpu sweep-lambda-cpu"
)
declare -A into=([glue-cpu]=reports)
for suite in benchmarks/suites/protocol-*.toml; do
  name="$(basename "$suite" .toml)"
  if [ -d "reports/protocol/$name" ]; then
    args[$name]="--suite $suite --results reports/protocol/results"
    # these experiments' jobs are glue-cpu's own (teacher_init, vae_grad, the stage split): their records are glue-cpu's
    case $name in protocol-lgtm-cola|protocol-prokt-cola|protocol-kdfd-vae-grad|protocol-tinybert-mrpc) args[$name]+=" --also reports/glue-cpu/results";; esac
    into[$name]=reports/protocol
  fi
done

names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(printf '%s\n' "${!args[@]}" | sort))
tmp="$(mktemp -d)"
failed=0
for name in "${names[@]}"; do
  [ -n "${args[$name]:-}" ] || { echo "no committed report named $name (have: ${!args[*]})" >&2; exit 2; }
  out="$tmp"; [ $write = 1 ] && out="${into[$name]}"
  # shellcheck disable=SC2086
  bench report ${args[$name]} --out "$out" > "$tmp/$name.log" 2>&1 \
    || { echo "$name: bench report failed (exit $?), see $tmp/$name.log"; failed=1; continue; }
  [ $write = 1 ] && { echo "$name: regenerated in ${into[$name]}/$name"; continue; }
  committed="${into[$name]}/$name"
  if diff -rq -x report.md -x results "$committed" "$tmp/$name" > "$tmp/$name.diff" \
     && diff <(sed 3d "$committed/report.md") <(sed 3d "$tmp/$name/report.md") >> "$tmp/$name.diff"; then
    echo "$name: identical"
  else
    echo "$name: differs"; sed -n 1,20p "$tmp/$name.diff"; failed=1
  fi
done
exit $failed
