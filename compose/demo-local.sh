#!/usr/bin/env bash
# The local demo: a pinnace master and two agents on this machine, running the seed
# manifests (examples/seed, the seed unchanged). `up` starts everything and leaves it
# running; `down` stops what `up` started (by the PIDs it wrote) and removes the pods'
# containers (by their pinnace.node label). State and logs live in .demo/.
#
# What is shared with the rest of the machine can be moved, so that runs side by side
# (tests/integration/test_demo_local.py, other people's demos) never meet:
#   PINNACE_DEMO_DIR          state and logs (default .demo)
#   PINNACE_DEMO_PORT         the master's gRPC port (default 7400)
#   PINNACE_DEMO_NODES        the two agents' node names (default "demo-node-1 demo-node-2")
#   PINNACE_DEMO_METRICS_PORT the first agent's /metrics port, the next one's +1 (default
#                             9401; 0: any free port for each)
#   PINNACE_DEMO_LB_PORT      where the load balancer serves the seed Service's port 80
#                             (default 8080, as the compose demo; --lb-port-offset)
#   PINNACE_DEMO_MASTER_FLAGS, PINNACE_DEMO_AGENT_FLAGS  more flags for the master and for
#                             each agent (--api-listen, --metrics-listen, --service-cidr,
#                             --dns-dir...)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DEMO=${PINNACE_DEMO_DIR:-.demo}
BIN=.venv/bin
PORT=${PINNACE_DEMO_PORT:-7400}
export PINNACE_MASTER=127.0.0.1:$PORT
SEED=${PINNACE_SEED_DIR:-examples/seed}
read -r -a NODES <<<"${PINNACE_DEMO_NODES:-demo-node-1 demo-node-2}"
METRICS_PORT=${PINNACE_DEMO_METRICS_PORT:-9401}
LB_PORT=${PINNACE_DEMO_LB_PORT:-8080}
read -r -a MASTER_FLAGS <<<"${PINNACE_DEMO_MASTER_FLAGS:-}"
read -r -a AGENT_FLAGS <<<"${PINNACE_DEMO_AGENT_FLAGS:-}"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() { printf '\033[31mdemo: %s\033[0m\n' "$*" >&2; exit 1; }

down() {
  local pids=()
  for pidfile in "$DEMO"/*.pid; do
    [[ -e $pidfile ]] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null && echo "stopped $(basename "$pidfile" .pid) (pid $pid)" && pids+=("$pid")
    rm -f "$pidfile"
  done
  # Each stops its HAProxy on the way out (--stop-lb-on-exit, --stop-node-proxy-on-exit),
  # from the folders removed below: wait for them (30 s at most).
  for pid in "${pids[@]}"; do
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  done
  for node in "${NODES[@]}"; do
    ids=$(docker ps -aq --filter "label=pinnace.node=$node")
    [[ -n $ids ]] && docker rm -f $ids >/dev/null && echo "removed the containers of $node"
  done
  rm -rf "$DEMO"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out waiting for $what (logs: $DEMO/*.log)"
    sleep 0.5
  done
}

ready_nodes() { [[ $($BIN/pinnace get nodes | grep -c ' Ready ') -ge 2 ]]; }
running_pods() { [[ $($BIN/pinnace get pods | grep -c ' Running ') -ge $1 ]]; }

up() {
  [[ -d $SEED ]] || fail "seed manifests not found in $SEED (set PINNACE_SEED_DIR)"
  [[ -e $DEMO/master.pid ]] && down
  mkdir -p "$DEMO"
  step "starting the master on $PINNACE_MASTER"
  $BIN/pinnace master --listen "$PINNACE_MASTER" --data-dir "$DEMO/master-data" \
    --stop-lb-on-exit --lb-port-offset $((LB_PORT - 80)) ${MASTER_FLAGS[@]+"${MASTER_FLAGS[@]}"} \
    >"$DEMO/master.out" 2>"$DEMO/master.log" &
  echo $! >"$DEMO/master.pid"
  # The master writes its admin credentials on first start; agents join with a token.
  export PINNACE_CONFIG=$DEMO/master-data/pinnace.conf
  wait_for 30 "the master's admin credentials" test -s "$PINNACE_CONFIG"
  token=$($BIN/pinnace token create --ttl 1h)
  metrics=$METRICS_PORT # the master's /metrics is on 9400; each agent gets its own port
  for node in "${NODES[@]}"; do
    step "starting agent $node (metrics on 127.0.0.1:$metrics)"
    $BIN/pinnace agent --master "$PINNACE_MASTER" --name "$node" --advertise-address 127.0.0.1 \
      --token "$token" --state-dir "$DEMO/$node-state" --metrics-listen "127.0.0.1:$metrics" \
      --stop-node-proxy-on-exit ${AGENT_FLAGS[@]+"${AGENT_FLAGS[@]}"} \
      >"$DEMO/$node.log" 2>&1 &
    ((metrics == 0)) || metrics=$((metrics + 1))
    echo $! >"$DEMO/$node.pid"
  done
  wait_for 30 "two Ready nodes" ready_nodes
  $BIN/pinnace get nodes -o wide
  step "pinnace apply -f $SEED/deployment.yaml"
  $BIN/pinnace apply -f "$SEED/deployment.yaml"
  wait_for 60 "3 running pods" running_pods 3
  $BIN/pinnace get deployments
  $BIN/pinnace get pods -o wide
  step "fetching the page from each pod"
  for ep in $($BIN/pinnace get pods -o json | $BIN/python -c \
      'import json,sys; print(*[e for p in json.load(sys.stdin)["items"] for e in p["status"].get("endpoints",[])])'); do
    printf '%s -> %s\n' "$ep" "$(curl -fsS "http://$ep/" | grep -o '<title>.*</title>')"
  done
  lb=127.0.0.1:$LB_PORT
  step "pinnace apply -f $SEED/service.yaml: a LoadBalancer Service, HAProxy on $lb"
  $BIN/pinnace apply -f "$SEED/service.yaml"
  wait_for 30 "the load balancer on $lb" curl -fsS "http://$lb/"
  $BIN/pinnace get services
  printf '%s -> %s\n' "$lb" "$(curl -fsS "http://$lb/" | grep -o '<title>.*</title>')"
  step "scaling to 5"
  $BIN/pinnace scale deployment my-web-app-deployment --replicas 5
  wait_for 60 "5 running pods" running_pods 5
  $BIN/pinnace get pods -o wide
  step "killing one container with docker kill: its agent restarts it"
  # A pod's own container (label pinnace.container), not its sandbox's holder.
  victim=$(docker ps -q --filter "label=pinnace.node=${NODES[0]}" --filter label=pinnace.container | head -1)
  docker kill "$victim" >/dev/null
  sleep 2
  $BIN/pinnace get pods
  step "what happened"
  $BIN/pinnace get events
  step "the same cluster through kubectl (pinnace kubeconfig > $DEMO/kubeconfig)"
  $BIN/pinnace kubeconfig >"$DEMO/kubeconfig"
  kubectl=$BIN/kubectl
  [[ -x $kubectl ]] || kubectl=kubectl
  if command -v "$kubectl" >/dev/null; then
    KUBECONFIG=$DEMO/kubeconfig "$kubectl" get deployments,pods
  fi
  cat <<TXT

The cluster keeps running. Explore it:
  export PINNACE_MASTER=$PINNACE_MASTER PINNACE_CONFIG=$(realpath "$PINNACE_CONFIG")
  .venv/bin/pinnace get pods -o wide
  curl http://$lb/     # the Service through the load balancer
  .venv/bin/pinnace scale deployment my-web-app-deployment --replicas 2
  .venv/bin/pinnace get events
  KUBECONFIG=$(realpath "$DEMO/kubeconfig") kubectl get pods -o wide
Stop it with: make demo-local-down
TXT
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) fail "usage: $0 up|down" ;;
esac
