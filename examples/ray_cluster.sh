#!/usr/bin/env bash
# Label and verify on a Ray cluster of your own: `ray start --head`, `labeler apply --engine ray`
# against it, a verify report, then the head node stops (only the one this script started).
#   examples/ray_cluster.sh generated/ labeled/                 # or s3://bucket/in/ s3://bucket/out/
# Settings come from the environment, as on a real cluster: LABELER_CONFIG (or LABELER_PROVIDER_NAME,
# LABELER_KEY_FILE: a path every node mounts), LABELER_TRUST for verify, AWS_* / AWS_ENDPOINT_URL.
# On a cluster you already run (KubeRay...): skip the head node, pass --address ray://HOST:10001.
set -euo pipefail
src="${1:?source (directory or URL)}"; out="${2:?output (directory or URL)}"
# Ray's token authentication (its default in recent releases): the head and its clients share
# ~/.ray/auth_token; `ray status` uses it only when told to.
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
port="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
ray start --head --block --node-ip-address 127.0.0.1 --port "$port" --num-cpus "${RAY_CPUS:-2}" \
  --include-dashboard false --disable-usage-stats > ray-head.log 2>&1 &
head_pid=$!
stop_head() {  # this head only (`ray stop` would stop every Ray node on the machine)
  kill "$head_pid" 2>/dev/null; wait "$head_pid" 2>/dev/null || true
  case "$(cat /tmp/ray/ray_current_cluster 2>/dev/null)" in  # its pointer, stale now
    *":$port") rm -f /tmp/ray/ray_current_cluster ;;
  esac
}
trap stop_head EXIT
address="127.0.0.1:$port"
for _ in $(seq 120); do ray status --address "$address" > /dev/null 2>&1 && break; sleep 1; done
labeler apply "$src" --out "$out" --engine ray --address "$address" --report run.jsonl   # re-run to resume
labeler verify "$out" --engine ray --address "$address" --report report.jsonl --require verified
