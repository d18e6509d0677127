#!/bin/bash
# Raw TCP throughput between two emulated hosts of decent-cluster, one connection, one direction
# and both directions at once, for each rate: what the emulated network plus this machine's CPU
# can carry without MPI or decent (the ceiling for benchmarks 1-3 of docs/benchmarks-cluster.md).
#
#   BUILD_DIR=build bench/cluster_tcp.sh          # RATES="1gbit 10gbit none" MB=256
set -eu
BUILD_DIR=${BUILD_DIR:-build}
RATES=${RATES:-1gbit 10gbit none}
MB=${MB:-256}
PY=/usr/bin/python3
cat >/tmp/decent_tcp_probe.py <<'PYEOF'
import socket, sys, time, threading
mode, host, port, mb = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
chunk = b"x" * (1 << 20)
if mode == "recv":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port)); s.listen(1); c, _ = s.accept()
    got, start = 0, None
    while True:
        b = c.recv(1 << 20)
        if not b: break
        if start is None: start = time.perf_counter()
        got += len(b)
    secs = time.perf_counter() - start
    print(f"received {got / 1e6:.0f} MB in {secs:.3f} s: {got * 8 / secs / 1e9:.3f} Gbit/s", flush=True)
else:
    c = socket.create_connection((host, port))
    for _ in range(mb): c.sendall(chunk)
    c.close()
PYEOF
for rate in $RATES; do
  "$BUILD_DIR/bin/decent-cluster" run -q -n 2 --rate "$rate" --name btcp --exec -- /bin/bash -c '
    dir=$DECENT_CLUSTER_DIR/$DECENT_CLUSTER
    subnet=$(sed -n "s/^subnet=\(10\.77\.[0-9]*\)\.0\/24$/\1/p" "$dir/info")
    ns1=dch-$DECENT_CLUSTER-1 ns2=dch-$DECENT_CLUSTER-2
    echo "rate '"$rate"', one direction (host 1 -> host 2):"
    ip netns exec $ns2 '"$PY"' /tmp/decent_tcp_probe.py recv $subnet.12 5001 0 & r=$!
    sleep 0.5
    ip netns exec $ns1 '"$PY"' /tmp/decent_tcp_probe.py send $subnet.12 5001 '"$MB"'
    wait $r
    echo "rate '"$rate"', both directions at once:"
    ip netns exec $ns2 '"$PY"' /tmp/decent_tcp_probe.py recv $subnet.12 5002 0 & r1=$!
    ip netns exec $ns1 '"$PY"' /tmp/decent_tcp_probe.py recv $subnet.11 5003 0 & r2=$!
    sleep 0.5
    ip netns exec $ns1 '"$PY"' /tmp/decent_tcp_probe.py send $subnet.12 5002 '"$MB"' & s1=$!
    ip netns exec $ns2 '"$PY"' /tmp/decent_tcp_probe.py send $subnet.11 5003 '"$MB"'
    wait $s1 $r1 $r2'
done
