#!/usr/bin/env bash
# Two "machines" on one box: `mpirun` with one rank in each of two network namespaces joined
# by a veth pair, talking TCP, against the same training on one machine.
#
#   sudo benchmarks/two_hosts.sh [CORPUS]      (default ../shared/corpora/tinyshakespeare.txt)
#   STEPS=60 sudo benchmarks/two_hosts.sh
#
# Namespace charrnn-a (10.10.0.1) runs mpiexec and rank 0, in a directory that holds the
# corpus; charrnn-b (10.10.0.2) runs rank 1 in an empty directory: the second machine needs
# charrnn but not the corpus, and gets no file. Hydra's ssh launcher is pointed at
# nslaunch.sh, which runs the proxy inside the namespace named for the host (no sshd).
# UCX_TLS=tcp: otherwise UCX sees one kernel and uses shared memory, and nothing crosses the
# veth. Then the same run on one machine with --threads 2; the two checkpoints must be equal
# bit for bit. Needs root (ip netns). Everything is torn down on exit.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PY=$(python -c 'import os, sys; print(os.path.realpath(sys.executable))')
BIN=$(dirname "$PY")
CORPUS=${1:-$ROOT/../shared/corpora/tinyshakespeare.txt}
STEPS=${STEPS:-30}
export CHARRNN_NS_A=charrnn-a CHARRNN_NS_B=charrnn-b
WORK=$(mktemp -d)
ARGS=(train "$WORK/corpus.txt" --steps "$STEPS" --hidden 128 --batch 16 --seq-len 64 --seed 7 --quiet)

teardown() {
  for ns in "$CHARRNN_NS_A" "$CHARRNN_NS_B"; do
    if ip netns list | grep -qw "$ns"; then
      pids=$(ip netns pids "$ns" || true)
      [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
      ip netns del "$ns"
    fi
  done
  ip link del charrnn-va 2>/dev/null || true
  rm -rf "$WORK"
}
trap teardown EXIT

teardown_ns_only() { local w=$WORK; WORK=/nonexistent-$$; teardown; WORK=$w; }
teardown_ns_only
mkdir -p "$WORK/a" "$WORK/b"
if [ -f "$CORPUS" ]; then cp "$CORPUS" "$WORK/corpus.txt"; else
  "$PY" -c "import pydoc_data.topics as t; print('\n'.join(t.topics.values()))" > "$WORK/corpus.txt"; fi

ip netns add "$CHARRNN_NS_A"
ip netns add "$CHARRNN_NS_B"
ip link add charrnn-va type veth peer name charrnn-vb
ip link set charrnn-va netns "$CHARRNN_NS_A"
ip link set charrnn-vb netns "$CHARRNN_NS_B"
ip -n "$CHARRNN_NS_A" addr add 10.10.0.1/24 dev charrnn-va
ip -n "$CHARRNN_NS_B" addr add 10.10.0.2/24 dev charrnn-vb
for ns in "$CHARRNN_NS_A" "$CHARRNN_NS_B"; do ip -n "$ns" link set lo up; done
ip -n "$CHARRNN_NS_A" link set charrnn-va up
ip -n "$CHARRNN_NS_B" link set charrnn-vb up

veth_bytes() { ip -n "$CHARRNN_NS_A" -s link show charrnn-va | awk '/RX:/{getline; rx=$1} /TX:/{getline; tx=$1} END{print rx + tx}'; }

echo "two hosts: $CHARRNN_NS_A (10.10.0.1, rank 0, $WORK/a) and $CHARRNN_NS_B (10.10.0.2, rank 1, $WORK/b)"
echo "corpus: $CORPUS ($(wc -c < "$WORK/corpus.txt") bytes), $STEPS steps"
before=$(veth_bytes)
start=$(date +%s.%N)
set +e
timeout 600 ip netns exec "$CHARRNN_NS_A" env UCX_TLS=tcp CHARRNN_MPI_TIMEOUT=60 \
  "$BIN/mpiexec" -launcher ssh -launcher-exec "$HERE/nslaunch.sh" -hosts 10.10.0.1,10.10.0.2 \
  -n 1 -wdir "$WORK/a" "$PY" -m charrnn "${ARGS[@]}" --threads 1 --name two-hosts --checkpoint-dir "$WORK/a/checkpoints" \
  : -n 1 -wdir "$WORK/b" "$PY" -m charrnn "${ARGS[@]}" --threads 1 --name two-hosts --checkpoint-dir "$WORK/a/checkpoints" \
  2> "$WORK/mpi.err"
rc=$?
set -e
mpi_s=$(printf %.1f "$(echo "$(date +%s.%N) - $start" | bc)")
crossed=$(( $(veth_bytes) - before ))
echo "mpiexec rc=$rc in ${mpi_s} s; $crossed bytes crossed the veth"
sed 's/^/  stderr: /' "$WORK/mpi.err" | head -5
[ "$rc" -eq 0 ] || exit "$rc"
echo "rank 1's directory after the run: [$(ls -A "$WORK/b")]"

start=$(date +%s.%N)
(cd "$WORK/a" && "$PY" -m charrnn "${ARGS[@]}" --threads 2 --name one-host --checkpoint-dir "$WORK/a/checkpoints")
echo "one machine, --threads 2: $(printf %.1f "$(echo "$(date +%s.%N) - $start" | bc)") s"

if [ -z "${NO_REDUCE:-}" ]; then  # one gradient reduction across the veth (bench_mpi.py's part 2)
  ip netns exec "$CHARRNN_NS_A" env UCX_TLS=tcp timeout 300 "$BIN/mpiexec" -launcher ssh \
    -launcher-exec "$HERE/nslaunch.sh" -hosts 10.10.0.1,10.10.0.2 -n 2 "$PY" "$HERE/bench_mpi.py" --reduce |
    "$PY" -c "import json, sys; [print(f'reduction over TCP, {k}: {v[\"seconds\"] * 1e3:.2f} ms ({v[\"bytes\"] / 2**20:.1f} MiB)') for k, v in json.loads(sys.stdin.read().splitlines()[-1]).items()]"
fi

"$PY" - "$WORK/a/checkpoints" <<'EOF'
import sys
import numpy as np
from safetensors.numpy import load_file
a = load_file(f"{sys.argv[1]}/two-hosts/latest.ckpt")
b = load_file(f"{sys.argv[1]}/one-host/latest.ckpt")
same = sorted(a) == sorted(b) and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)
print(f"{len(a)} tensors ({sum(v.size for v in a.values()):,} numbers): identical bit for bit: {'yes' if same else 'no'}")
sys.exit(0 if same else 1)
EOF
