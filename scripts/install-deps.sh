#!/usr/bin/env bash
# Installs every build and run-time dependency from Debian's packages.
# Idempotent: when everything is present it only checks and returns.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libeigen3-dev nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenmpi-dev openmpi-bin
  libtorch-dev
  # LibTorch's CPU matrix maths goes through the system BLAS: OpenBLAS is ~30x faster than the
  # reference BLAS that libtorch-dev pulls in (measured: 0.9 vs 25-35 GFLOP/s, one thread).
  libopenblas0-pthread
  dataset-fashion-mnist
  graphviz python3-matplotlib
  # The Python module (python/): built against Debian's PyTorch, which shares libtorch-dev's build.
  python3-dev python3-torch pybind11-dev python3-pytest python3-numpy
  # decent-cluster (emulated multi-host network): ip netns, veth, bridge, tc tbf.
  iproute2
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
