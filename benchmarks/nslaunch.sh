#!/usr/bin/env bash
# The "ssh" of benchmarks/two_hosts.sh: hydra runs `nslaunch.sh [-x] HOST COMMAND...`; this runs
# COMMAND through a shell (as sshd would) inside the network namespace named for HOST.
while [[ "${1:-}" == -* ]]; do shift; done
host=$1; shift
case "$host" in
  10.10.0.1) ns=${CHARRNN_NS_A:-charrnn-a} ;;
  10.10.0.2) ns=${CHARRNN_NS_B:-charrnn-b} ;;
  *) ns=$host ;;
esac
exec ip netns exec "$ns" /bin/bash -c "$*"
