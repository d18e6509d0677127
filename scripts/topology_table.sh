#!/usr/bin/env bash
# Prints the Markdown tables of docs/topologies.md: max degree, messages per node and rho of
# every topology decent-topo lists, at n = 16 and n = 64 (uniform weights, seed 0), plus the
# irregular graphs with Metropolis-Hastings weights.
#
#   scripts/topology_table.sh [path/to/decent-topo] [n ...]
set -euo pipefail

topo=${1:-build/bin/decent-topo}
shift || true
sizes=("$@")
[[ ${#sizes[@]} -eq 0 ]] && sizes=(16 64)
if [[ ! -x $topo ]]; then
  echo "decent-topo not found at '$topo' (build it, or pass its path)" >&2
  exit 1
fi

mapfile -t names < <("$topo" --list | awk '{print $1}')

row() {  # row LABEL ARGS...: one table row from decent-topo --json
  local label=$1 report
  shift
  if ! report=$("$topo" "$@" --json 2>/dev/null); then
    echo "| $label | - | - | - | - | - |"  # e.g. hypercube when n is not a power of 2
    return
  fi
  python3 -c '
import json, sys
r = json.loads(sys.argv[2])
def num(x):
    return "-" if x is None else "%.4f" % x
period = r["period"] if r["dynamic"] else 1
per_step = r.get("rho_per_step") if r["dynamic"] else r["rho"]
print("| %s | %d | %.3g | %s | %d | %s |" % (sys.argv[1], r["max_degree"],
      r["messages_per_node"], num(r["rho"]), period, num(per_step)))
' "$label" "$report"
}

for n in "${sizes[@]}"; do
  echo
  echo "n = $n"
  echo
  echo "| topology | max in-degree | messages / node / step | rho (one period) | period | rho per step |"
  echo "|---|---|---|---|---|---|"
  for name in "${names[@]}"; do
    row "$name" "$name" -n "$n"
  done
  for name in star grid random; do
    row "$name (metropolis)" "$name" -n "$n" --weights metropolis
  done
done
