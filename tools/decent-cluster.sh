#!/bin/bash
# decent-cluster: an emulated cluster on one machine. Each emulated host is a Linux network
# namespace with one veth interface on a private bridge, rate-limited by a token bucket (tc tbf)
# in both directions; Open MPI runs across the hosts over TCP, started through an
# `ip netns exec` launch agent instead of ssh (docs/cluster.md).
#
#   decent-cluster up -n 4 --rate 1gbit [--ranks-per-host K] [--name NAME]
#   decent-cluster run -n 4 --rate 1gbit [--name NAME] -- [DECENTRUN OPTIONS] PROGRAM [ARGS...]
#   decent-cluster run -n 4 --rate 1gbit --exec -- COMMAND [ARGS...]
#   decent-cluster run -n 4 --timeout 600 -- PROGRAM   # stop it after 600 s (exit 124)
#   decent-cluster down [--name NAME]
#   decent-cluster list | status [--name NAME] | hostfile [--name NAME]
#
# Every object it creates is recorded in the cluster's state directory
# ($DECENT_CLUSTER_DIR, default /run/decent-cluster/NAME) before it is created; `down` deletes
# exactly what is recorded there and nothing else. `run` always tears down what it brought up,
# also when the program fails or the run is interrupted (SIGINT, SIGTERM, SIGHUP).
#
# Exit status: 0 success; `run`: the program's status (128 + s when interrupted by signal s, 124
# when stopped by --timeout);
# 1 a command of the setup or teardown failed (what was built is torn down again); 2 bad usage;
# 3 not root; 4 a required tool (ip, tc, mpirun for run) is missing; 5 the name (or one of its
# interfaces or namespaces) is taken; 6 no cluster of that name.

set -u
set -o pipefail

readonly EXIT_FAILED=1 EXIT_USAGE=2 EXIT_NOT_ROOT=3 EXIT_MISSING_TOOL=4 EXIT_EXISTS=5 EXIT_NO_CLUSTER=6
readonly STATE_ROOT="${DECENT_CLUSTER_DIR:-/run/decent-cluster}"
SELF_DIR=${BASH_SOURCE[0]%/*}
[[ $SELF_DIR == "${BASH_SOURCE[0]}" ]] && SELF_DIR=.
readonly SELF_DIR

usage() {
  cat <<'EOF'
usage: decent-cluster up    -n HOSTS [--rate RATE] [--ranks-per-host K] [--name NAME]
                            [--egress-only] [--subnet-index I]
       decent-cluster run   -n HOSTS [same options as up] [--np P] -- [DECENTRUN OPTIONS] PROGRAM [ARGS...]
       decent-cluster run   -n HOSTS [same options as up] --exec -- COMMAND [ARGS...]
       decent-cluster down  [--name NAME]
       decent-cluster status [--name NAME]     (what the cluster consists of)
       decent-cluster hostfile [--name NAME]   (path of its Open MPI hostfile)
       decent-cluster list                     (names of the clusters that are up)

  -n, --hosts N         emulated hosts (network namespaces), 1..64
  --rate RATE           per-host link rate in each direction, tc syntax (100mbit, 1gbit,
                        10gbit) or 'none' for no limit; default 1gbit
  --ranks-per-host K    MPI slots per host (run starts N*K ranks; DECENT_RANKS_PER_MACHINE=K)
  --name NAME           1-8 characters [a-z0-9]; default 'default'
  --egress-only         limit only what a host sends (default: sent and received)
  --subnet-index I      use 10.77.I.0/24 (default: the lowest index no other cluster uses)
  --np P                ranks for run (default N*K)
  --exec                run COMMAND as is while the cluster is up, with DECENT_CLUSTER=NAME
                        (e.g. a script calling `decentrun --cluster "$DECENT_CLUSTER" ...`)
  --timeout SECONDS     run: stop the program after SECONDS (SIGTERM, then SIGKILL after 10 s),
                        tear down and exit 124 (a launch that never starts its ranks hangs)

Exit status: 0 ok (run: the program's; 124 after --timeout); 1 setup/teardown command failed; 2 usage;
3 not root; 4 ip/tc/mpirun missing; 5 name or interface taken; 6 no such cluster.
EOF
}

die() {
  local code=$1
  shift
  echo "decent-cluster: $*" >&2
  exit "$code"
}

log() { [[ ${QUIET:-0} == 1 ]] || echo "decent-cluster: $*" >&2; }

require_root_and_tools() {
  if [[ $EUID -ne 0 ]]; then
    die $EXIT_NOT_ROOT "must run as root (network namespaces, interfaces and qdiscs need" \
      "CAP_NET_ADMIN); run it again with sudo"
  fi
  local tool
  for tool in ip tc "$@"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      case $tool in
        ip | tc) die $EXIT_MISSING_TOOL "'$tool' not found on PATH; install iproute2 (Debian: apt-get install iproute2)" ;;
        mpirun) die $EXIT_MISSING_TOOL "'mpirun' not found on PATH; install Open MPI (Debian: apt-get install openmpi-bin)" ;;
        *) die $EXIT_MISSING_TOOL "'$tool' not found on PATH" ;;
      esac
    fi
  done
}

# ---- names and state ----

check_name() {
  [[ $1 =~ ^[a-z0-9]{1,8}$ ]] || die $EXIT_USAGE "--name must be 1-8 characters of [a-z0-9], got '$1'"
}

bridge_name() { echo "dcb-$1"; }
veth_name() { echo "dcv-$1-$2"; }
netns_name() { echo "dch-$1-$2"; }

state_dir() { echo "$STATE_ROOT/$1"; }

# Rate in tc syntax -> bytes per second (for the bucket size), or die.
rate_bytes_per_s() {
  local rate=$1
  if [[ ! $rate =~ ^([0-9]+)(\.[0-9]+)?(bit|kbit|mbit|gbit|tbit)$ ]]; then
    die $EXIT_USAGE "--rate must look like 100mbit, 1gbit, 2.5gbit or be 'none', got '$rate'"
  fi
  local unit=${BASH_REMATCH[3]} scale
  case $unit in
    bit) scale=1 ;; kbit) scale=1000 ;; mbit) scale=1000000 ;; gbit) scale=1000000000 ;;
    tbit) scale=1000000000000 ;;
  esac
  # Integer arithmetic only (no awk: this runs before the tools are checked).
  local whole=${BASH_REMATCH[1]} fraction=${BASH_REMATCH[2]#.} bits
  bits=$((10#$whole * scale))
  if [[ -n $fraction ]]; then
    bits=$((bits + 10#$fraction * scale / 10 ** ${#fraction}))
  fi
  echo $((bits / 8))
}

# Runs a command, logging it when DECENT_CLUSTER_VERBOSE=1; returns its status.
do_cmd() {
  [[ ${DECENT_CLUSTER_VERBOSE:-0} == 1 ]] && echo "+ $*" >&2
  "$@"
}

# Records an object in the cluster's list before it is created, so that `down` finds it even if
# the creation is interrupted half-way.
record() { echo "$2 $3" >>"$1/objects"; }

# ---- teardown ----

# Ends the processes still running inside a namespace (ranks, orted) so that it really goes away:
# `ip netns del` only removes the name while processes keep the namespace alive.
kill_namespace_processes() {
  local ns=$1 pids
  pids=$(ip netns pids "$ns" 2>/dev/null) || return 0
  [[ -z $pids ]] && return 0
  kill -TERM $pids 2>/dev/null
  local i
  for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    pids=$(ip netns pids "$ns" 2>/dev/null)
    [[ -z $pids ]] && return 0
    sleep 0.1
  done
  kill -KILL $pids 2>/dev/null
  sleep 0.1
}

# Deletes exactly the objects listed in DIR/objects (namespaces first, then host-side veths,
# then the bridge), then the state directory. Returns 1 if something listed could not be deleted.
teardown_dir() {
  local dir=$1 status=0 kind object
  if [[ -f $dir/objects ]]; then
    local -a namespaces=() veths=() bridges=()
    while read -r kind object; do
      case $kind in
        netns) namespaces+=("$object") ;;
        veth) veths+=("$object") ;;
        bridge) bridges+=("$object") ;;
      esac
    done <"$dir/objects"
    for object in "${namespaces[@]+"${namespaces[@]}"}"; do
      if ip netns list | awk '{print $1}' | grep -qx -- "$object"; then
        kill_namespace_processes "$object"
        if ! do_cmd ip netns del "$object" && ip netns list | awk '{print $1}' | grep -qx -- "$object"; then
          echo "decent-cluster: could not delete namespace $object" >&2
          status=1
        fi
      fi
    done
    # A veth whose peer was in a deleted namespace disappears with it, a moment after `ip netns
    # del` returns (the kernel frees the namespace asynchronously); delete the rest. A device
    # that vanishes between the check and the deletion is not an error.
    for object in "${veths[@]+"${veths[@]}"}" "${bridges[@]+"${bridges[@]}"}"; do
      if ip link show dev "$object" >/dev/null 2>&1; then
        if ! do_cmd ip link del dev "$object" 2>/dev/null && ip link show dev "$object" >/dev/null 2>&1; then
          echo "decent-cluster: could not delete interface $object" >&2
          status=1
        fi
      fi
    done
  fi
  if [[ $status -eq 0 ]]; then
    local index
    index=$(sed -n 's/^subnet_index=//p' "$dir/info" 2>/dev/null)
    [[ -n $index ]] && rmdir "$STATE_ROOT/.subnets/$index" 2>/dev/null
    rm -rf -- "$dir"
  fi
  return $status
}

# ---- bring up ----

pick_subnet_index() {
  local requested=$1 index
  mkdir -p "$STATE_ROOT/.subnets" || return 1
  for index in $(if [[ -n $requested ]]; then echo "$requested"; else seq 0 254; fi); do
    # Skip subnets this machine already has an address in.
    ip -4 -o addr show | grep -q " 10\.77\.$index\." && continue
    if mkdir "$STATE_ROOT/.subnets/$index" 2>/dev/null; then
      echo "$index"
      return 0
    fi
  done
  return 1
}

# Builds the cluster described by the globals (NAME, HOSTS, RATE, RANKS_PER_HOST, EGRESS_ONLY,
# SUBNET_INDEX); on any failure tears down what it built and exits.
cluster_up() {
  local dir
  dir=$(state_dir "$NAME")
  mkdir -p "$STATE_ROOT" || die $EXIT_FAILED "cannot create $STATE_ROOT"
  if ! mkdir "$dir" 2>/dev/null; then
    die $EXIT_EXISTS "a cluster named '$NAME' is already up (state in $dir); use another --name or" \
      "run: decent-cluster down --name $NAME"
  fi
  UP_DIR=$dir  # torn down by the trap if we do not get to the end
  trap 'up_interrupted INT' INT
  trap 'up_interrupted TERM' TERM
  trap 'up_interrupted HUP' HUP
  : >"$dir/objects"

  # Refuse before creating anything if a name we would use exists (never touch others' objects).
  local i bridge
  bridge=$(bridge_name "$NAME")
  local -a taken=()
  ip link show dev "$bridge" >/dev/null 2>&1 && taken+=("interface $bridge")
  for ((i = 1; i <= HOSTS; i++)); do
    ip link show dev "$(veth_name "$NAME" "$i")" >/dev/null 2>&1 && taken+=("interface $(veth_name "$NAME" "$i")")
    ip netns list | awk '{print $1}' | grep -qx -- "$(netns_name "$NAME" "$i")" && taken+=("namespace $(netns_name "$NAME" "$i")")
  done
  if [[ ${#taken[@]} -gt 0 ]]; then
    rm -rf -- "$dir"
    die $EXIT_EXISTS "cannot create cluster '$NAME': ${taken[*]} already exist(s) and were not made by" \
      "decent-cluster for this name; remove them or use another --name"
  fi

  local index
  if ! index=$(pick_subnet_index "$SUBNET_INDEX"); then
    rm -rf -- "$dir"
    if [[ -n $SUBNET_INDEX ]]; then
      die $EXIT_EXISTS "subnet 10.77.$SUBNET_INDEX.0/24 is in use"
    fi
    die $EXIT_FAILED "no free subnet 10.77.I.0/24 (I = 0..254)"
  fi
  local subnet="10.77.$index" bytes burst
  {
    echo "name=$NAME"
    echo "hosts=$HOSTS"
    echo "ranks_per_host=$RANKS_PER_HOST"
    echo "rate=$RATE"
    echo "egress_only=$EGRESS_ONLY"
    echo "subnet_index=$index"
    echo "subnet=$subnet.0/24"
    echo "created=$(date -u +%Y-%m-%dT%H:%M:%SZ) by pid $$"
  } >"$dir/info"
  if [[ $RATE != none ]]; then
    bytes=$(rate_bytes_per_s "$RATE")
    # A bucket of 2 ms at line rate, at least 256 KiB (tbf needs rate/HZ at the very least).
    burst=$(( bytes / 500 > 262144 ? bytes / 500 : 262144 ))
  fi

  fail_up() {
    echo "decent-cluster: $1; tearing down what was created" >&2
    teardown_dir "$dir"
    exit $EXIT_FAILED
  }

  record "$dir" bridge "$bridge"
  do_cmd ip link add "$bridge" type bridge || fail_up "cannot create bridge $bridge"
  do_cmd ip addr add "$subnet.1/24" dev "$bridge" || fail_up "cannot address $bridge"
  do_cmd ip link set "$bridge" up || fail_up "cannot bring $bridge up"
  local ns veth hostfile="$dir/hostfile" agent="$dir/agent"
  : >"$hostfile"
  {
    echo '#!/bin/sh'
    echo "# Launch agent of decent-cluster '$NAME': mpirun calls it as AGENT HOST COMMAND..."
    echo '# in place of ssh; it runs COMMAND inside the network namespace of HOST.'
    echo 'host=$1; shift'
    echo 'case "$host" in'
  } >"$agent"
  for ((i = 1; i <= HOSTS; i++)); do
    ns=$(netns_name "$NAME" "$i")
    veth=$(veth_name "$NAME" "$i")
    local ip_address="$subnet.$((10 + i))"
    record "$dir" netns "$ns"
    do_cmd ip netns add "$ns" || fail_up "cannot create namespace $ns"
    record "$dir" veth "$veth"
    do_cmd ip link add "$veth" type veth peer name eth0 netns "$ns" || fail_up "cannot create veth $veth"
    do_cmd ip link set "$veth" master "$bridge" up || fail_up "cannot attach $veth to $bridge"
    do_cmd ip -n "$ns" addr add "$ip_address/24" dev eth0 || fail_up "cannot address eth0 in $ns"
    do_cmd ip -n "$ns" link set eth0 up || fail_up "cannot bring eth0 up in $ns"
    do_cmd ip -n "$ns" link set lo up || fail_up "cannot bring lo up in $ns"
    if [[ $RATE != none ]]; then
      # What the host sends ...
      do_cmd ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "$RATE" burst "$burst" latency 100ms ||
        fail_up "cannot rate-limit eth0 in $ns (tc tbf)"
      # ... and what it receives (the bridge side of its veth sends towards the host).
      if [[ $EGRESS_ONLY == 0 ]]; then
        do_cmd tc qdisc add dev "$veth" root tbf rate "$RATE" burst "$burst" latency 100ms ||
          fail_up "cannot rate-limit $veth (tc tbf)"
      fi
    fi
    echo "$ip_address slots=$RANKS_PER_HOST" >>"$hostfile"
    echo "  $ip_address) ns=$ns ;;" >>"$agent"
  done
  {
    echo '  *) echo "decent-cluster agent: unknown host $host" >&2; exit 255 ;;'
    echo 'esac'
    # Every emulated host shares this machine's hostname and /tmp, so Open MPI's daemons would
    # race to create the same session directory; the loser exits silently after daemonizing
    # and mpirun waits for it forever (about one launch in ten). Each host gets its own.
    echo "tmp=$dir/session-\$ns"
    echo 'mkdir -p "$tmp" || exit 255'
    echo 'exec ip netns exec "$ns" env OMPI_MCA_orte_tmpdir_base="$tmp" /bin/sh -c "$*"'
  } >>"$agent"
  chmod 755 "$agent"
  # Arguments decentrun --cluster adds to mpirun, one per line.
  printf '%s\n' -mca plm_rsh_agent "$agent" -mca plm_rsh_no_tree_spawn 1 -mca btl tcp,self \
    -mca btl_tcp_if_include "$subnet.0/24" -mca oob_tcp_if_include "$subnet.0/24" >"$dir/mpirun.args"
  echo "$RANKS_PER_HOST" >"$dir/ranks_per_host"
  trap - INT TERM HUP
  UP_DIR=
  log "cluster '$NAME' up: $HOSTS hosts ($subnet.11-$subnet.$((10 + HOSTS))), $RANKS_PER_HOST slot(s) each," \
    "rate $RATE$([[ $EGRESS_ONLY == 1 ]] && echo ' (egress only)'), state in $dir"
}

up_interrupted() {
  echo "decent-cluster: interrupted by SIG$1 while bringing the cluster up; tearing down" >&2
  [[ -n ${UP_DIR:-} ]] && teardown_dir "$UP_DIR"
  local code=130
  [[ $1 == TERM ]] && code=143
  [[ $1 == HUP ]] && code=129
  exit $code
}

# ---- commands ----

parse_cluster_options() {
  NAME=default HOSTS= RATE=1gbit RANKS_PER_HOST=1 EGRESS_ONLY=0 SUBNET_INDEX= NP= EXEC=0 TIMEOUT=
  REST=()
  while [[ $# -gt 0 ]]; do
    case $1 in
      -n | --hosts) [[ $# -ge 2 ]] || die $EXIT_USAGE "$1 needs a value"; HOSTS=$2; shift 2 ;;
      --rate) [[ $# -ge 2 ]] || die $EXIT_USAGE "$1 needs a value"; RATE=$2; shift 2 ;;
      --ranks-per-host) [[ $# -ge 2 ]] || die $EXIT_USAGE "$1 needs a value"; RANKS_PER_HOST=$2; shift 2 ;;
      --name) [[ $# -ge 2 ]] || die $EXIT_USAGE "$1 needs a value"; NAME=$2; shift 2 ;;
      --subnet-index) [[ $# -ge 2 ]] || die $EXIT_USAGE "$1 needs a value"; SUBNET_INDEX=$2; shift 2 ;;
      --np) [[ $# -ge 2 ]] || die $EXIT_USAGE "$1 needs a value"; NP=$2; shift 2 ;;
      --timeout) [[ $# -ge 2 ]] || die $EXIT_USAGE "$1 needs a value"; TIMEOUT=$2; shift 2 ;;
      --egress-only) EGRESS_ONLY=1; shift ;;
      --exec) EXEC=1; shift ;;
      -q | --quiet) QUIET=1; shift ;;
      -h | --help) usage; exit 0 ;;
      --) shift; REST=("$@"); break ;;
      *) die $EXIT_USAGE "unknown option '$1' (decent-cluster --help)" ;;
    esac
  done
  check_name "$NAME"
}

validate_up_options() {
  [[ -n $HOSTS ]] || die $EXIT_USAGE "the number of hosts is required (-n N)"
  [[ $HOSTS =~ ^[0-9]+$ && $HOSTS -ge 1 && $HOSTS -le 64 ]] || die $EXIT_USAGE "-n must be 1..64, got '$HOSTS'"
  [[ $RANKS_PER_HOST =~ ^[0-9]+$ && $RANKS_PER_HOST -ge 1 ]] ||
    die $EXIT_USAGE "--ranks-per-host must be a positive integer, got '$RANKS_PER_HOST'"
  [[ -z $SUBNET_INDEX || ($SUBNET_INDEX =~ ^[0-9]+$ && $SUBNET_INDEX -le 254) ]] ||
    die $EXIT_USAGE "--subnet-index must be 0..254, got '$SUBNET_INDEX'"
  [[ -z $NP || ($NP =~ ^[0-9]+$ && $NP -ge 1) ]] || die $EXIT_USAGE "--np must be a positive integer, got '$NP'"
  [[ -z $TIMEOUT || ($TIMEOUT =~ ^[0-9]+$ && $TIMEOUT -ge 1) ]] ||
    die $EXIT_USAGE "--timeout must be a positive number of seconds, got '$TIMEOUT'"
  [[ $RATE == none ]] || rate_bytes_per_s "$RATE" >/dev/null || exit $EXIT_USAGE
}

cmd_up() {
  parse_cluster_options "$@"
  [[ ${#REST[@]} -eq 0 ]] || die $EXIT_USAGE "up takes no program (use run)"
  validate_up_options
  require_root_and_tools
  cluster_up
}

cmd_down() {
  parse_cluster_options "$@"
  require_root_and_tools
  local dir
  dir=$(state_dir "$NAME")
  [[ -d $dir ]] || die $EXIT_NO_CLUSTER "no cluster named '$NAME' is up (no $dir); nothing to tear down"
  teardown_dir "$dir" || die $EXIT_FAILED "teardown of '$NAME' incomplete; state kept in $dir"
  log "cluster '$NAME' down"
}

cmd_status() {
  parse_cluster_options "$@"
  local dir
  dir=$(state_dir "$NAME")
  [[ -d $dir ]] || die $EXIT_NO_CLUSTER "no cluster named '$NAME' is up (no $dir)"
  cat "$dir/info"
  echo "hostfile=$dir/hostfile"
  echo "agent=$dir/agent"
  echo "objects:"
  sed 's/^/  /' "$dir/objects"
}

cmd_hostfile() {
  parse_cluster_options "$@"
  local dir
  dir=$(state_dir "$NAME")
  [[ -f $dir/hostfile ]] || die $EXIT_NO_CLUSTER "no cluster named '$NAME' is up (no $dir)"
  echo "$dir/hostfile"
}

cmd_list() {
  local dir
  for dir in "$STATE_ROOT"/*/; do
    [[ -f $dir/info ]] && basename "$dir"
  done
  return 0
}

find_decentrun() {
  if [[ -x $SELF_DIR/decentrun ]]; then
    echo "$SELF_DIR/decentrun"
  elif command -v decentrun >/dev/null 2>&1; then
    command -v decentrun
  else
    die $EXIT_MISSING_TOOL "decentrun not found next to $0 or on PATH"
  fi
}

RUN_DIR=
CHILD=
WATCHDOG=

run_teardown() {
  if [[ -n $RUN_DIR && -d $RUN_DIR ]]; then
    teardown_dir "$RUN_DIR" || echo "decent-cluster: teardown incomplete; state kept in $RUN_DIR" >&2
    log "cluster '$NAME' down"
  fi
  RUN_DIR=
}

run_signal() {
  local signal=$1 code=$2
  echo "decent-cluster: SIG$signal; stopping the program and tearing the cluster down" >&2
  if [[ -n $WATCHDOG ]]; then
    pkill -P "$WATCHDOG" 2>/dev/null
    kill "$WATCHDOG" 2>/dev/null
  fi
  if [[ -n $CHILD ]]; then
    kill -s "$signal" -- "-$CHILD" 2>/dev/null || kill -s "$signal" "$CHILD" 2>/dev/null
    local i
    for ((i = 0; i < 100; i++)); do
      kill -0 "$CHILD" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$CHILD" 2>/dev/null
  fi
  run_teardown
  trap - EXIT
  exit "$code"
}

cmd_run() {
  parse_cluster_options "$@"
  validate_up_options
  [[ ${#REST[@]} -gt 0 ]] || die $EXIT_USAGE "run needs a program after --"
  require_root_and_tools mpirun
  local launcher=
  [[ $EXEC == 1 ]] || launcher=$(find_decentrun) || exit $?
  cluster_up
  RUN_DIR=$(state_dir "$NAME")
  trap run_teardown EXIT
  trap 'run_signal INT 130' INT
  trap 'run_signal TERM 143' TERM
  trap 'run_signal HUP 129' HUP
  trap 'echo "decent-cluster: --timeout $TIMEOUT s reached" >&2; run_signal TERM 124' USR1
  local -a command
  if [[ $EXEC == 1 ]]; then
    command=("${REST[@]}")
  else
    command=("$launcher" --cluster "$NAME" -np "${NP:-$((HOSTS * RANKS_PER_HOST))}" "${REST[@]}")
  fi
  # The program runs in its own process group (job control on), so that a signal to this script
  # can be passed on to all of it; its stdin is /dev/null (a background group may not read the
  # terminal).
  set -m
  DECENT_CLUSTER=$NAME DECENT_CLUSTER_DIR=$STATE_ROOT "${command[@]}" </dev/null &
  CHILD=$!
  set +m
  if [[ -n $TIMEOUT ]]; then
    # The watchdog asks this script (SIGUSR1) to stop the program and tear down.
    (sleep "$TIMEOUT" && kill -USR1 $$) </dev/null >/dev/null 2>&1 &
    WATCHDOG=$!
  fi
  local status
  while true; do
    wait "$CHILD"
    status=$?
    # wait returns early (status > 128) when a trapped signal arrives; the trap exits. Otherwise
    # the child has ended.
    kill -0 "$CHILD" 2>/dev/null || break
  done
  CHILD=
  if [[ -n $WATCHDOG ]]; then
    pkill -P "$WATCHDOG" 2>/dev/null  # its sleep; the watchdog then ends without signalling
    kill "$WATCHDOG" 2>/dev/null
    WATCHDOG=
  fi
  run_teardown
  trap - EXIT INT TERM HUP USR1
  return "$status"
}

main() {
  [[ $# -ge 1 ]] || { usage >&2; exit $EXIT_USAGE; }
  local command=$1
  shift
  case $command in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    run) cmd_run "$@" ;;
    status) cmd_status "$@" ;;
    hostfile) cmd_hostfile "$@" ;;
    list) cmd_list ;;
    -h | --help | help) usage ;;
    *) usage >&2; die $EXIT_USAGE "unknown command '$command'" ;;
  esac
}

main "$@"
