#!/usr/bin/env bash
# Two "machines" on one box: one MPI rank in each of two Linux network namespaces joined by a
# veth pair, talking TCP, against the same training on one machine; the checkpoints must be
# equal bit for bit.
#
#   sudo benchmarks/two_hosts.sh [CORPUS]    (default ../shared/corpora/tinyshakespeare.txt
#                                             from the repository; a generated text if absent)
#   STEPS=60 sudo benchmarks/two_hosts.sh     (steps of each run, default 30)
#   TIMEOUT=300                               (seconds for each run, default 300)
#   NO_REDUCE=1                               (skip the extras: the CHARRNN_MPI_REDUCE=sum run
#                                             and the reduction timings)
#   CHARRNN_NS_A / CHARRNN_NS_B               (namespace names, default charrnn-a-PID / -b-PID)
#
# Namespace A (10.10.0.1, dev va) runs mpiexec and rank 0, in a directory holding the corpus;
# namespace B (10.10.0.2, dev vb) runs rank 1 in another, empty directory, with the same
# arguments (relative paths): the second machine needs charrnn but not the corpus, and gets
# no file. Hydra's ssh launcher is pointed at nslaunch.sh, which runs the proxy inside the
# namespace named for the host (no sshd); mpiexec runs inside A so that the proxy in B reaches
# its control port. UCX_TLS=tcp: otherwise UCX sees one kernel and uses shared memory, and
# nothing crosses the veth. Then the same training on one machine with --threads 2, no
# mpirun. Needs root (ip netns). The namespaces and the temporary directory are removed on
# exit, also after a failure, a timeout or a signal.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
CORPUS=${1:-$ROOT/../shared/corpora/tinyshakespeare.txt}
STEPS=${STEPS:-30}
TIMEOUT=${TIMEOUT:-300}
# the interpreter (PYTHON, else `python`'s sys.executable) and the mpiexec beside it, symlinks
# not resolved: a virtual environment's bin/ holds the mpich wheel's mpiexec, its python is a
# link to an interpreter elsewhere
PY=${PYTHON:-$(python -c 'import sys; print(sys.executable)')}
MPIEXEC=$(dirname "$PY")/mpiexec

[ "$(id -u)" -eq 0 ] || { echo "two_hosts.sh: needs root (ip netns)" >&2; exit 2; }
[ -x "$MPIEXEC" ] || { echo "two_hosts.sh: no $MPIEXEC beside $PY: pip install mpi4py mpich" >&2; exit 2; }
echo "python: $PY; mpiexec: $MPIEXEC"
# A stale launch environment would make the single-machine run a rank of nothing; the
# settings of each run are on its command line below.
for v in $(compgen -e | grep -E '^(PMI_|PMIX_|HYDI_|OMPI_|MPI_LOCAL)' || true); do unset "$v"; done
unset CHARRNN_MPI_REDUCE CHARRNN_CHECKPOINT_DIR

export CHARRNN_NS_A=${CHARRNN_NS_A:-charrnn-a-$$} CHARRNN_NS_B=${CHARRNN_NS_B:-charrnn-b-$$}
export CHARRNN_IP_A=10.10.0.1 CHARRNN_IP_B=10.10.0.2  # for nslaunch.sh
MADE=()
WORK=$(mktemp -d "${TMPDIR:-/tmp}/charrnn-two-hosts.XXXXXX")
A=$WORK/a  # rank 0's directory (machine A): the corpus, the checkpoints
B=$WORK/b  # rank 1's directory (machine B): empty
CHILD=
exec {ERR}>&2  # this script's stderr (a signal may come while a run's stderr is redirected)

teardown() {
  local rc=$? ns pids
  set +e
  cd /
  for ns in "${MADE[@]}"; do  # only the namespaces this run made
    pids=$(ip netns pids "$ns" 2>/dev/null)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null  # what a timeout, a failure or a signal left in there
    ip netns del "$ns"
  done
  rm -rf "$WORK"
  exit "$rc"
}
stop() {  # SIGINT/SIGTERM: the running job gets SIGTERM (charrnn finishes its step and saves); 15 s
  trap '' INT TERM
  set +e
  echo "two_hosts.sh: stopped by a signal; ending the run and tearing down" >&"$ERR"
  if [ -n "$CHILD" ]; then
    kill -TERM "$CHILD" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$CHILD" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$CHILD" 2>/dev/null  # timeout's own process group: timeout and its command
  fi
  exit "$1"
}
trap teardown EXIT
trap 'stop 130' INT
trap 'stop 143' TERM

# run CMD...: CMD under `timeout`, in the background and waited for, so that a signal to this
# script is acted on at once (timeout puts itself in a process group of its own, away from a
# terminal's Ctrl-C; a foreground child would delay the trap until it ends).
run() {
  local rc=0
  timeout -k 10 "$TIMEOUT" "$@" &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=
  return "$rc"
}
said() { echo "rc=$1$( [ "$1" -ne 124 ] && [ "$1" -ne 137 ] || echo " (timed out after $TIMEOUT s)")"; }
seconds() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
veth() { ip netns exec "$CHARRNN_NS_A" cat /sys/class/net/va/statistics/rx_bytes /sys/class/net/va/statistics/tx_bytes | paste -sd' '; }
quote() { sed 's/^/  | /'; }

mkdir "$A" "$B"
if [ -f "$CORPUS" ]; then
  cp "$CORPUS" "$A/corpus.txt"
else
  echo "($CORPUS is absent: a generated text instead)"
  CORPUS="generated (Python's pydoc topics)"
  "$PY" -c "import pydoc_data.topics as t; print('\n'.join(t.topics.values()))" > "$A/corpus.txt"
fi

for ns in "$CHARRNN_NS_A" "$CHARRNN_NS_B"; do
  [ ! -e "/run/netns/$ns" ] || { echo "two_hosts.sh: network namespace $ns exists already (another run?)" >&2; exit 1; }
  ip netns add "$ns"
  MADE+=("$ns")
done
ip link add va netns "$CHARRNN_NS_A" type veth peer name vb netns "$CHARRNN_NS_B"  # never in the root namespace
ip -n "$CHARRNN_NS_A" addr add "$CHARRNN_IP_A/24" dev va
ip -n "$CHARRNN_NS_B" addr add "$CHARRNN_IP_B/24" dev vb
for ns in "$CHARRNN_NS_A" "$CHARRNN_NS_B"; do ip -n "$ns" link set lo up; done
ip -n "$CHARRNN_NS_A" link set va up
ip -n "$CHARRNN_NS_B" link set vb up
# Wait for the link to come up (~0.5-1 s here): a rank whose UCX starts before sees only lo,
# fails in MPI_Init ("tcp/lo - no route to ..."), and the job hangs until the timeout.
link_up() {
  [ "$(ip netns exec "$CHARRNN_NS_A" cat /sys/class/net/va/operstate)" = up ] &&
    [ "$(ip netns exec "$CHARRNN_NS_B" cat /sys/class/net/vb/operstate)" = up ]
}
for _ in $(seq 100); do link_up && break; sleep 0.1; done
link_up || { echo "two_hosts.sh: the veth pair did not come up in 10 s" >&2; exit 1; }

TRAIN=(train corpus.txt --steps "$STEPS" --hidden 128 --batch 16 --seq-len 64 --seed 7)
MPIEXEC_A=(ip netns exec "$CHARRNN_NS_A" env UCX_TLS=tcp)  # machine A, where mpiexec runs
HOSTS=(-launcher ssh -launcher-exec "$HERE/nslaunch.sh" -hosts "$CHARRNN_IP_A:1,$CHARRNN_IP_B:1")
two_hosts() {  # two_hosts NAME [ENV=VALUE...]: rank 0 in A (dir $A), rank 1 in B (dir $B), same arguments
  local name=$1
  shift
  run "${MPIEXEC_A[@]}" "$@" "$MPIEXEC" "${HOSTS[@]}" \
    -n 1 -wdir "$A" "$PY" -m charrnn "${TRAIN[@]}" --threads 1 --name "$name" \
    : -n 1 -wdir "$B" "$PY" -m charrnn "${TRAIN[@]}" --threads 1 --name "$name"
}

echo "two hosts: netns $CHARRNN_NS_A ($CHARRNN_IP_A, dev va): mpiexec, rank 0 in $A"
echo "           netns $CHARRNN_NS_B ($CHARRNN_IP_B, dev vb): rank 1 in $B (empty)"
echo "corpus: $CORPUS ($(wc -c < "$A/corpus.txt") bytes)"
echo "each rank: python -m charrnn ${TRAIN[*]} --threads 1 --name two-hosts"
read -r rx0 tx0 < <(veth)
t0=$EPOCHREALTIME
rc=0
two_hosts two-hosts > "$WORK/mpi.out" 2> "$WORK/mpi.err" || rc=$?
mpi_s=$(seconds "$t0")
read -r rx1 tx1 < <(veth)
rx=$((rx1 - rx0)) tx=$((tx1 - tx0))
echo "mpiexec $(said "$rc") in $mpi_s s"
echo "veth va: RX +$rx bytes, TX +$tx bytes; $((rx + tx)) bytes crossed the veth"
echo "charrnn's stderr (the MPI run, first lines):"
head -n 6 "$WORK/mpi.err" | quote
if [ "$rc" -ne 0 ]; then
  echo "the MPI run's stderr and stdout, last lines:"
  tail -n 30 "$WORK/mpi.err" "$WORK/mpi.out" | quote
  exit "$rc"
fi
echo "rank 1's directory after the run: [$(ls -A "$B" | paste -sd' ')]"

echo "one machine: python -m charrnn ${TRAIN[*]} --threads 2 --name one-host"
cd "$A"
t0=$EPOCHREALTIME
rc=0
run "$PY" -m charrnn "${TRAIN[@]}" --threads 2 --name one-host > "$WORK/one.out" 2> "$WORK/one.err" || rc=$?
echo "one machine $(said "$rc") in $(seconds "$t0") s"
[ "$rc" -eq 0 ] || { tail -n 30 "$WORK/one.err" | quote; exit "$rc"; }

if [ -z "${NO_REDUCE:-}" ]; then
  # The summing reduction (MPI_Allreduce, instead of gathering and summing in rank order).
  t0=$EPOCHREALTIME
  rc=0
  two_hosts two-hosts-sum CHARRNN_MPI_REDUCE=sum > "$WORK/sum.out" 2> "$WORK/sum.err" || rc=$?
  echo "CHARRNN_MPI_REDUCE=sum on the two hosts: mpiexec $(said "$rc") in $(seconds "$t0") s"
  [ "$rc" -eq 0 ] || tail -n 10 "$WORK/sum.err" | quote
  head -n 1 "$WORK/sum.err" | quote
  # One gradient reduction between the hosts, timed (bench_mpi.py's part 2).
  rc=0
  run "${MPIEXEC_A[@]}" "$MPIEXEC" "${HOSTS[@]}" -n 2 "$PY" "$HERE/bench_mpi.py" --reduce \
    > "$WORK/reduce.out" 2> "$WORK/reduce.err" || rc=$?
  if [ "$rc" -eq 0 ]; then
    "$PY" -c "import json, sys; [print(f'reduction over TCP, {k}: {v[\"seconds\"] * 1e3:.2f} ms ({v[\"bytes\"] / 2**20:.1f} MiB)') for k, v in json.loads(sys.stdin.read().splitlines()[-1]).items()]" < "$WORK/reduce.out"
  else
    echo "reduction timing: mpiexec $(said "$rc")"
    tail -n 10 "$WORK/reduce.err" | quote
  fi
fi

# The verdict, on the last line (tests/test_training_mpi.py reads it).
"$PY" - "$A/checkpoints" <<'EOF'
import os
import sys

import numpy as np
from safetensors.numpy import load_file


def same(a, b):
    return sorted(a) == sorted(b) and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


runs = sys.argv[1]
one = load_file(f"{runs}/one-host/latest.ckpt")
if os.path.exists(f"{runs}/two-hosts-sum/latest.ckpt"):
    s = load_file(f"{runs}/two-hosts-sum/latest.ckpt")
    if sorted(s) == sorted(one):
        diff = max(float(np.max(np.abs(s[k].astype(np.float64) - one[k].astype(np.float64)), initial=0.0)) for k in one)
        print(f"CHARRNN_MPI_REDUCE=sum vs one machine: max abs diff {diff:.3g}, "
              f"identical bit for bit: {'yes' if same(s, one) else 'no'}")
    else:
        print(f"CHARRNN_MPI_REDUCE=sum vs one machine: other tensors ({sorted(set(s) ^ set(one))})")
two = load_file(f"{runs}/two-hosts/latest.ckpt")
print(f"{len(two)} tensors ({sum(v.size for v in two.values()):,} numbers), two hosts vs one machine: "
      f"identical bit for bit: {'yes' if same(two, one) else 'no'}")
sys.exit(0 if same(two, one) else 1)
EOF
