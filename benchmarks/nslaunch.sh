#!/usr/bin/env bash
# The "ssh" of benchmarks/two_hosts.sh (mpiexec -launcher ssh -launcher-exec nslaunch.sh).
# Hydra runs `nslaunch.sh [-x] HOST COMMAND...`, COMMAND being a remote shell's command line;
# this runs it through a shell, as sshd would, inside the network namespace of HOST:
# CHARRNN_IP_A -> CHARRNN_NS_A, CHARRNN_IP_B -> CHARRNN_NS_B (set by two_hosts.sh, inherited
# through mpiexec's environment). No sshd, no /etc/hosts.
set -euo pipefail
while [[ "${1:-}" == -* ]]; do shift; done  # ssh options such as -x
host=${1:?usage: nslaunch.sh [-x] HOST COMMAND...}
shift
case "$host" in
  "${CHARRNN_IP_A:-unset}") ns=${CHARRNN_NS_A:?nslaunch.sh: CHARRNN_NS_A is not set} ;;
  "${CHARRNN_IP_B:-unset}") ns=${CHARRNN_NS_B:?nslaunch.sh: CHARRNN_NS_B is not set} ;;
  *) echo "nslaunch.sh: no network namespace for host $host (CHARRNN_IP_A=${CHARRNN_IP_A:-}, CHARRNN_IP_B=${CHARRNN_IP_B:-})" >&2
     exit 255 ;;
esac
exec ip netns exec "$ns" /bin/bash -c "$*"
