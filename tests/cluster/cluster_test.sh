#!/bin/bash
# Tests of decent-cluster (tools/decent-cluster.sh) on real network namespaces, run by ctest:
#
#   cluster_test.sh CASE DECENT_CLUSTER DECENTRUN AVERAGE_CONSENSUS
#
# CASE is one of refusals, up-down, run, run-failure, run-signal (SIGTERM, SIGINT, --timeout),
# foreign-names. Every case uses
# its own cluster name (t + 5 random hex digits), so it cannot collide with a cluster a user has
# up or with the other cases running in parallel, and an EXIT trap removes whatever of that name
# is left even when an assertion fails. Exit 77 (ctest SKIP_RETURN_CODE) when not root or when
# iproute2/tc/mpirun is missing; `refusals` still checks the non-root refusal in that case.
set -u
set -o pipefail

CASE=$1
TOOL=$2
DECENTRUN=$3
CONSENSUS=$4
NAME=t$(printf '%05x' $(( (RANDOM << 8 ^ RANDOM ^ $$) & 0xfffff )))
STATE_ROOT=${DECENT_CLUSTER_DIR:-/run/decent-cluster}
WORK=$(mktemp -d)
FOREIGN=()  # interfaces this test created by hand

fail() {
  echo "FAIL [$CASE]: $*" >&2
  exit 1
}

# Everything that still carries this test's name, one per line ("" when nothing is left).
leftovers() {
  ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
    grep -E "^dc[bv]-$NAME(-|$)"
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^dch-$NAME-"
  [[ -e $STATE_ROOT/$NAME ]] && echo "state directory $STATE_ROOT/$NAME"
  return 0
}

cleanup() {
  local name
  for name in "${FOREIGN[@]+"${FOREIGN[@]}"}"; do ip link del dev "$name" 2>/dev/null; done
  if [[ -n $(leftovers) ]]; then
    "$TOOL" down --name "$NAME" -q >/dev/null 2>&1
    for name in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^dch-$NAME-"); do
      ip netns del "$name"
    done
    for name in $(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E "^dc[bv]-$NAME(-|$)"); do
      ip link del dev "$name"
    done
    rm -rf -- "${STATE_ROOT:?}/$NAME"
  fi
  rm -rf -- "$WORK"
}
trap cleanup EXIT

assert_nothing_left() {
  local left
  left=$(leftovers)
  [[ -z $left ]] || fail "left behind after $1: $(echo "$left" | tr '\n' ' ')"
}

# Runs the tool, keeping status, stdout and stderr in STATUS, OUT, ERR.
run_tool() {
  "$@" >"$WORK/out" 2>"$WORK/err"
  STATUS=$?
  OUT=$(cat "$WORK/out")
  ERR=$(cat "$WORK/err")
}

expect_status() {
  [[ $STATUS -eq $1 ]] || fail "$2: exit status $STATUS, expected $1; stderr: $ERR"
}

expect_in() {
  [[ $1 == *"$2"* ]] || fail "$3: '$2' not in: $1"
}

need_root() {
  if [[ $EUID -ne 0 ]]; then
    echo "SKIP [$CASE]: needs root (network namespaces)"
    exit 77
  fi
  local tool
  for tool in ip tc mpirun; do
    if ! command -v "$tool" >/dev/null; then
      echo "SKIP [$CASE]: '$tool' is not installed"
      exit 77
    fi
  done
}

case_refusals() {
  # Not root: a clear refusal before anything is created.
  if [[ $EUID -eq 0 ]]; then
    command -v setpriv >/dev/null || fail "setpriv (util-linux) is needed to drop root"
    run_tool setpriv --reuid=65534 --regid=65534 --clear-groups /bin/bash "$TOOL" up -n 2 --name "$NAME"
  else
    run_tool /bin/bash "$TOOL" up -n 2 --name "$NAME"
  fi
  expect_status 3 "up as a non-root user"
  expect_in "$ERR" "must run as root" "non-root message"
  assert_nothing_left "the non-root refusal"
  need_root

  # ip/tc missing: a clear refusal naming the package.
  run_tool env PATH=/nonexistent /bin/bash "$TOOL" up -n 2 --name "$NAME"
  expect_status 4 "up without ip on PATH"
  expect_in "$ERR" "iproute2" "missing-tool message"
  assert_nothing_left "the missing-tool refusal"

  # Bad usage.
  run_tool "$TOOL" up -n 2 --name "Bad_Name"
  expect_status 2 "an invalid name"
  run_tool "$TOOL" up -n 2 --name "$NAME" --rate fast
  expect_status 2 "an invalid rate"
  run_tool "$TOOL" up -n 0 --name "$NAME"
  expect_status 2 "-n 0"
  run_tool "$TOOL" up --name "$NAME"
  expect_status 2 "no -n"
  run_tool "$TOOL" run -n 2 --name "$NAME" --timeout 0 -- /bin/true
  expect_status 2 "--timeout 0"
  run_tool "$TOOL" frobnicate
  expect_status 2 "an unknown command"
  assert_nothing_left "the usage errors"

  # down / status of a cluster that is not up: a clear error, nothing deleted.
  run_tool "$TOOL" down --name "$NAME"
  expect_status 6 "down on a missing cluster"
  expect_in "$ERR" "no cluster named '$NAME'" "missing-cluster message"
  run_tool "$TOOL" status --name "$NAME"
  expect_status 6 "status of a missing cluster"

  # decentrun --cluster with a cluster that is not up: a usage error naming the fix.
  run_tool "$DECENTRUN" --cluster "$NAME" -np 2 /bin/true
  expect_status 2 "decentrun --cluster on a missing cluster"
  expect_in "$ERR" "decent-cluster up" "decentrun's missing-cluster message"
}

case_up_down() {
  need_root
  run_tool "$TOOL" up -n 3 --rate 200mbit --name "$NAME"
  expect_status 0 "up -n 3"
  local dir=$STATE_ROOT/$NAME
  [[ -f $dir/hostfile && -x $dir/agent && -f $dir/mpirun.args ]] || fail "state files missing in $dir"
  [[ $(wc -l <"$dir/hostfile") -eq 3 ]] || fail "hostfile has not 3 hosts: $(cat "$dir/hostfile")"
  local i
  for i in 1 2 3; do
    ip netns list | awk '{print $1}' | grep -qx "dch-$NAME-$i" || fail "namespace dch-$NAME-$i missing"
    ip netns exec "dch-$NAME-$i" tc qdisc show dev eth0 | grep -q "tbf.*rate 200Mbit" ||
      fail "no 200Mbit tbf on eth0 of host $i: $(ip netns exec "dch-$NAME-$i" tc qdisc show dev eth0)"
    tc qdisc show dev "dcv-$NAME-$i" | grep -q "tbf.*rate 200Mbit" || fail "no tbf on dcv-$NAME-$i"
  done
  ip link show dev "dcb-$NAME" >/dev/null || fail "bridge dcb-$NAME missing"

  # The same name again is refused and leaves the running cluster intact.
  run_tool "$TOOL" up -n 2 --name "$NAME"
  expect_status 5 "a second up with the same name"
  expect_in "$ERR" "already up" "name-taken message"
  ip netns list | awk '{print $1}' | grep -qx "dch-$NAME-3" || fail "the refused up removed the cluster"

  # Ranks on different hosts live in different network namespaces with the hosts' addresses.
  run_tool "$DECENTRUN" --cluster "$NAME" -np 3 /bin/sh -c \
    'echo "$(readlink /proc/self/ns/net) $(ip -4 -o addr show dev eth0 | awk "{print \$4}")"'
  expect_status 0 "a probe over the cluster"
  local namespaces addresses
  namespaces=$(echo "$OUT" | awk '{print $1}' | sort -u | wc -l)
  addresses=$(echo "$OUT" | awk '{print $2}' | sort | tr '\n' ' ')
  [[ $namespaces -eq 3 ]] || fail "3 ranks ran in $namespaces namespaces: $OUT"
  local subnet
  subnet=$(sed -n 's/^subnet=10\.77\.\([0-9]*\)\.0\/24$/\1/p' "$dir/info")
  [[ $addresses == "10.77.$subnet.11/24 10.77.$subnet.12/24 10.77.$subnet.13/24 " ]] ||
    fail "ranks' addresses: '$addresses'"
  [[ $(readlink /proc/self/ns/net) != $(echo "$OUT" | awk 'NR==1 {print $1}') ]] ||
    fail "a rank ran in the root network namespace"

  run_tool "$TOOL" down --name "$NAME"
  expect_status 0 "down"
  assert_nothing_left "down"
}

case_run() {
  need_root
  # A real MPI program across 2 hosts x 2 ranks: the consensus of 4 ranks reaches 1.5 everywhere.
  run_tool "$TOOL" run -n 2 --ranks-per-host 2 --rate 1gbit --name "$NAME" -- "$CONSENSUS"
  expect_status 0 "run average_consensus"
  expect_in "$OUT" "4 ranks" "consensus output"
  expect_in "$OUT" "target 1.5" "consensus output"
  expect_in "$OUT" "converged" "consensus output"
  [[ $OUT != *"NOT converged"* ]] || fail "consensus did not converge: $OUT"
  assert_nothing_left "a successful run"
}

case_run_failure() {
  need_root
  run_tool "$TOOL" run -n 2 --name "$NAME" -- /bin/sh -c 'exit 7'
  [[ $STATUS -ne 0 ]] || fail "a failing program gave status 0"
  assert_nothing_left "a failing program"
  # --exec: the command's own status comes back unchanged.
  run_tool "$TOOL" run -n 2 --name "$NAME" --exec -- /bin/sh -c 'test -d "$DECENT_CLUSTER_DIR/$DECENT_CLUSTER" && exit 9'
  expect_status 9 "run --exec of a command exiting 9"
  assert_nothing_left "a failing --exec command"
}

case_run_signal() {
  need_root
  run_until_signal TERM 143
  run_until_signal INT 130
  # --timeout stops a program that runs too long (e.g. a launch that never starts) the same way.
  local start=$SECONDS
  run_tool "$TOOL" run -n 2 --name "$NAME" --timeout 2 -- /bin/sleep 60
  expect_status 124 "run stopped by --timeout 2"
  expect_in "$ERR" "--timeout 2 s reached" "timeout message"
  ((SECONDS - start < 20)) || fail "run with --timeout 2 took $((SECONDS - start)) s"
  assert_nothing_left "--timeout"
}

# Starts a run of `sleep 60` on 2 hosts, sends SIGNAL to decent-cluster once the ranks run, and
# checks the exit status and that the ranks and the cluster are gone.
run_until_signal() {
  local signal=$1 expected=$2
  "$TOOL" run -n 2 --name "$NAME" -- /bin/sleep 60 >"$WORK/out" 2>"$WORK/err" &
  local pid=$! i
  # Wait until the rank on host 2 (sleep) runs inside that host's namespace.
  rank_running() {
    local p
    for p in $(ip netns pids "dch-$NAME-2" 2>/dev/null); do
      [[ $(cat "/proc/$p/comm" 2>/dev/null) == sleep ]] && return 0
    done
    return 1
  }
  for ((i = 0; i < 200; i++)); do
    rank_running && break
    sleep 0.1
  done
  rank_running || fail "the program never started: $(cat "$WORK/err")"
  kill -s "$signal" "$pid"
  local start=$SECONDS
  wait "$pid"
  STATUS=$?
  ERR=$(cat "$WORK/err")
  expect_status "$expected" "run stopped by SIG$signal"
  ((SECONDS - start < 20)) || fail "teardown after SIG$signal took $((SECONDS - start)) s"
  assert_nothing_left "SIG$signal"
  pgrep -f "^/bin/sleep 60" >/dev/null && fail "a rank (sleep) survived the teardown"
  return 0
}

case_foreign_names() {
  need_root
  # An interface with one of the names the cluster would use, made by someone else: up refuses
  # and leaves it alone; down of the (never created) cluster deletes nothing.
  ip link add "dcv-$NAME-2" type bridge || fail "cannot create a stand-in interface"
  FOREIGN+=("dcv-$NAME-2")
  run_tool "$TOOL" up -n 2 --name "$NAME"
  expect_status 5 "up over a foreign interface"
  expect_in "$ERR" "dcv-$NAME-2" "foreign-name message"
  ip link show dev "dcv-$NAME-2" >/dev/null 2>&1 || fail "up deleted the foreign interface"
  run_tool "$TOOL" down --name "$NAME"
  expect_status 6 "down after the refused up"
  ip link show dev "dcv-$NAME-2" >/dev/null 2>&1 || fail "down deleted the foreign interface"
  ip link del dev "dcv-$NAME-2"
  FOREIGN=()
  assert_nothing_left "the refused up"
}

case "$CASE" in
  refusals) case_refusals ;;
  up-down) case_up_down ;;
  run) case_run ;;
  run-failure) case_run_failure ;;
  run-signal) case_run_signal ;;
  foreign-names) case_foreign_names ;;
  *) echo "unknown case $CASE" >&2; exit 2 ;;
esac
echo "PASS [$CASE]"
