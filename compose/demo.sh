#!/usr/bin/env bash
# The compose demo (`make demo`): a master with its HAProxy and three agents, each in its own
# container (compose/docker-compose.yml), running the seed walkthrough: apply the seed
# deployment and service unchanged, serve the page through the load balancer, scale to 5,
# then kill a node under a stream of requests and print what happened, when; a Redis
# StatefulSet with a claim (examples/redis/): write a key, kill its container and its node's
# agent, and read the key back from the new container; an Ingress (examples/ingress/)
# routing two host names on one port to the seed's nginx and a second web app; last, that
# second app's pod reaching the seed's Service by name (both on port 80, each its own cluster
# IP), answered by a pod on another node.
#
#   demo.sh up      builds what is missing, starts the cluster, runs the walkthrough and
#                   leaves the cluster running (a running demo is torn down first)
#   demo.sh down    removes everything `up` created: containers, the pods' containers,
#                   the network and the volumes
#
# The host's `pinnace` CLI (.venv) talks to the master's published port over TLS, with the
# admin credentials the master wrote on its volume, copied to compose/.state/PROJECT; the
# agents join with a token made through it. Environment:
# PINNACE_SEED_DIR (examples/seed), PINNACE_API_PORT (7400), PINNACE_KUBE_PORT (6443,
# the Kubernetes API; demo.sh writes compose/.state/PROJECT/kubeconfig), PINNACE_LB_PORT
# (8080), PINNACE_INGRESS_PORT (8880), PINNACE_DEMO_PROJECT (pinnace-demo; also the network's name), and the
# PINNACE_* variables compose/docker-compose.yml reads.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PROJECT=${PINNACE_DEMO_PROJECT:-pinnace-demo}
FILE=compose/docker-compose.yml
export PINNACE_API_PORT=${PINNACE_API_PORT:-7400}
export PINNACE_KUBE_PORT=${PINNACE_KUBE_PORT:-6443}
export PINNACE_LB_PORT=${PINNACE_LB_PORT:-8080}
export PINNACE_INGRESS_PORT=${PINNACE_INGRESS_PORT:-8880}
export PINNACE_BIND=${PINNACE_BIND:-127.0.0.1}
export PINNACE_NETWORK=${PINNACE_NETWORK:-$PROJECT}
export PINNACE_NODE_PREFIX=${PINNACE_NODE_PREFIX:-}
export PINNACE_MASTER=$PINNACE_BIND:$PINNACE_API_PORT
SEED=${PINNACE_SEED_DIR:-examples/seed}
LB=http://$PINNACE_BIND:$PINNACE_LB_PORT/
BIN=.venv/bin
STATE=$PWD/compose/.state/$PROJECT
export PINNACE_CONFIG=$STATE/pinnace.conf
NODES=("${PINNACE_NODE_PREFIX}node-1" "${PINNACE_NODE_PREFIX}node-2" "${PINNACE_NODE_PREFIX}node-3")
DEPLOY=my-web-app-deployment
work=$(mktemp -d "${TMPDIR:-/tmp}/pinnace-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
note() { printf '    %s\n' "$*"; }
fail() {
  printf '\n\033[31mdemo: FAILED: %s\033[0m\n' "$1" >&2
  printf 'demo: look at: %s\n' "${2:-$COMPOSE_HINT logs master}" >&2
  exit 1
}

# `docker compose` (v2) where present, else docker-compose (v1, Debian's).
if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null; then
  COMPOSE=(docker-compose)
else
  COMPOSE=()
fi
COMPOSE_HINT="${COMPOSE[*]:-docker compose} -p $PROJECT -f $FILE"
compose() { "${COMPOSE[@]}" -p "$PROJECT" -f "$FILE" "$@"; }
pinnace() { "$BIN/pinnace" "$@"; }

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND until it succeeds; says what it
# waited for and returns 1 at the deadline (the caller says where to look).
wait_for() {
  local seconds=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      printf '\033[31mdemo: timed out after %s s waiting for %s\033[0m\n' "$seconds" "$what" >&2
      return 1
    fi
    sleep 0.5
  done
}

# A Python one-liner over `pinnace get KIND -o json` (the items as `items`).
query() {
  local kind=$1 expr=$2
  pinnace get "$kind" -o json | "$BIN/python" -c "
import json, sys
items = json.load(sys.stdin)['items']
$expr"
}

ready_nodes() { query nodes "
print(sum(any(c['type'] == 'Ready' and c['status'] == 'True' for c in n['status']['conditions']) for n in items))"; }
# Pods of the deployment that are Running and ready, optionally not on node $1.
serving_pods() { query pods "
print(sum(p['status']['phase'] == 'Running' and all(c['ready'] for c in p['status'].get('containerStatuses', []))
          and p['spec'].get('nodeName') != '${1:-}' for p in items))"; }
node_status() { query nodes "
print(*[c['status'] for n in items if n['metadata']['name'] == '$1' for c in n['status']['conditions'] if c['type'] == 'Ready'])"; }
at_least() { [[ $("$1" "${@:3}") -ge $2 ]]; }

# The hostname nginx's page names: the pod's name, as Kubernetes gives it.
served_by() { grep -o 'id="hostname">[^<]*' | cut -d'>' -f2; }

check_engine() {
  docker info >/dev/null 2>&1 || fail "the Docker engine does not answer" "docker info"
  ((${#COMPOSE[@]})) || fail "neither \`docker compose\` nor docker-compose is installed" \
    "apt-get install docker-compose"
  [[ -x $BIN/pinnace ]] || fail "$BIN/pinnace is missing" "make venv"
}

port_free() { ! (exec 3<>"/dev/tcp/$PINNACE_BIND/$1") 2>/dev/null; }

down() {
  check_engine
  local ids
  # Agents first, so nothing recreates the pods between their removal and the end.
  if [[ -n $(compose ps -q 2>/dev/null) ]]; then
    step "stopping the cluster ($PROJECT)"
    compose stop -t 5
  fi
  ids=$(
    for node in "${NODES[@]}"; do docker ps -aq --no-trunc --filter "label=pinnace.node=$node"; done
    docker ps -aq --no-trunc --filter "network=$PINNACE_NETWORK"
  )
  ids=$(sort -u <<<"$ids" | grep -v -x -F -f <(compose ps -q 2>/dev/null) || true)
  if [[ -n $ids ]]; then
    step "removing $(wc -l <<<"$ids") pod containers"
    xargs docker rm -f <<<"$ids" >/dev/null
  fi
  step "removing the containers, network and volumes of $PROJECT"
  compose down -v --remove-orphans -t 5 ||
    note "compose down did not finish: removing what is left one by one"
  # compose stops at the first failure (it removes the network before the volumes).
  docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT" |
    xargs -r docker volume rm >/dev/null
  rm -rf "$STATE"
  # Pod volumes the agents made (labelled with their node), configMap/secret files and
  # memory emptyDirs.
  for node in "${NODES[@]}"; do
    docker volume ls -q --filter "label=pinnace.node=$node" | xargs -r docker volume rm -f >/dev/null
    rm -rf "/dev/shm/pinnace/$node" "/dev/shm/pinnace-memory/$node" 2>/dev/null || true
  done
  # The two host dirs the compose file bind-mounts (Docker made them when absent): removed when
  # empty, left when something else (another cluster on this machine) still has files there.
  rmdir /dev/shm/pinnace /dev/shm/pinnace-memory 2>/dev/null || true
  if docker network inspect "$PINNACE_NETWORK" >/dev/null 2>&1 &&
    ! docker network rm "$PINNACE_NETWORK" >/dev/null 2>&1; then
    fail "network $PINNACE_NETWORK is still there, with no container in it: the engine keeps a stale endpoint (moby/moby#42119); a dockerd restart removes it" \
      "docker network inspect $PINNACE_NETWORK; docker network rm $PINNACE_NETWORK"
  fi
  note "removed: nothing of $PROJECT is left"
}

# The admin client config the master writes on first start, copied out for the host's CLI.
fetch_credentials() {
  mkdir -p "$STATE"
  docker cp "$(compose ps -q master):/var/lib/pinnace/pinnace.conf" "$STATE/pinnace.conf"
}

# The same cluster through its Kubernetes API: a kubeconfig (`pinnace kubeconfig`, the server
# being the published port) and one `kubectl get pods` (the venv's kubectl, else one on PATH).
kubectl_too() {
  local kubectl=$BIN/kubectl server=https://$PINNACE_BIND:$PINNACE_KUBE_PORT
  [[ -x $kubectl ]] || kubectl=$(command -v kubectl || true)
  step "the Kubernetes API on $server: pinnace kubeconfig > $STATE/kubeconfig"
  pinnace kubeconfig --server "$server" >"$STATE/kubeconfig" || fail "writing a kubeconfig"
  chmod 600 "$STATE/kubeconfig"
  if [[ -z $kubectl ]]; then
    note "no kubectl here (make venv installs one); with one: kubectl --kubeconfig $STATE/kubeconfig get pods"
    return
  fi
  note "kubectl --kubeconfig $STATE/kubeconfig get pods"
  "$kubectl" --kubeconfig "$STATE/kubeconfig" --cache-dir "$work/kube-cache" get pods |
    sed -e 's/^/    /' || fail "kubectl get pods through the Kubernetes API" "$COMPOSE_HINT logs master"
}

up() {
  check_engine
  [[ -f $SEED/deployment.yaml && -f $SEED/service.yaml ]] ||
    fail "the seed manifests are not in $SEED" "ls $SEED (or set PINNACE_SEED_DIR)"
  if [[ -n $(compose ps -q 2>/dev/null) ]]; then
    step "a demo cluster is already running: starting afresh"
    down
  fi
  for port in "$PINNACE_API_PORT" "$PINNACE_KUBE_PORT" "$PINNACE_LB_PORT" "$PINNACE_INGRESS_PORT"; do
    port_free "$port" || fail "$PINNACE_BIND:$port is already in use (the local demo? \`make demo-local-down\`)" \
      "ss -ltnp 'sport = :$port' (or set PINNACE_API_PORT / PINNACE_KUBE_PORT / PINNACE_LB_PORT / PINNACE_INGRESS_PORT)"
  done

  step "building pinnace's image (compose/build-image.sh)"
  bash compose/build-image.sh || fail "building the image" "bash compose/build-image.sh"
  step "building the stateful example's image (compose/images/build.sh redis)"
  bash compose/images/build.sh redis || fail "building pinnace/redis:latest" "bash compose/images/build.sh redis"

  step "starting the master: $COMPOSE_HINT up -d master"
  compose up -d master || fail "$COMPOSE_HINT up -d master"
  note "API on $PINNACE_MASTER (TLS), load balancer on $LB"
  wait_for 30 "the master's credentials (pinnace.conf)" fetch_credentials ||
    fail "the master did not write its credentials"
  note "admin credentials for the CLI: PINNACE_CONFIG=$PINNACE_CONFIG"
  wait_for 30 "the master's API on $PINNACE_MASTER" pinnace get nodes ||
    fail "the master's API does not answer"
  PINNACE_TOKEN=$(pinnace token create --ttl 1h --description "compose demo agents") ||
    fail "creating a join token for the agents"
  export PINNACE_TOKEN

  step "starting three agents with a join token: $COMPOSE_HINT up -d"
  compose up -d || fail "$COMPOSE_HINT up -d"
  wait_for 60 "three Ready nodes" at_least ready_nodes 3 ||
    fail "the agents did not join" "$COMPOSE_HINT logs node-1"
  pinnace get nodes -o wide

  step "pinnace apply -f $SEED/deployment.yaml"
  pinnace apply -f "$SEED/deployment.yaml" || fail "applying the seed deployment"
  wait_for 90 "3 pods Running" at_least serving_pods 3 ||
    fail "the seed's pods are not running" "$BIN/pinnace get events; $COMPOSE_HINT logs node-1"
  pinnace get pods -o wide

  step "pinnace apply -f $SEED/service.yaml"
  pinnace apply -f "$SEED/service.yaml" || fail "applying the seed service"
  wait_for 30 "the load balancer on $LB" curl -fsS -m 2 -o /dev/null "$LB" ||
    fail "the load balancer does not serve the page" "$COMPOSE_HINT logs master"
  pinnace get services
  kubectl_too

  step "fetching the page through the load balancer: curl $LB"
  curl -fsS -m 5 "$LB" | grep -E '<title>|Served by' | sed -e 's/<[^>]*>//g' -e 's/^/    /'
  for _ in $(seq 12); do curl -fsS -m 5 "$LB" | served_by; done | sort | uniq -c |
    while read -r count host; do note "$count of 12 requests answered by pod $host"; done

  step "pinnace scale deployment $DEPLOY --replicas 5"
  pinnace scale deployment "$DEPLOY" --replicas 5
  wait_for 60 "5 pods Running" at_least serving_pods 5 ||
    fail "scaling to 5 did not finish" "$BIN/pinnace get events"
  pinnace get pods -o wide

  kill_a_node
  stateful_redis
  ingress_by_host
  services_by_name

  cat <<TXT

The cluster keeps running. Explore it from this shell:
  export PINNACE_MASTER=$PINNACE_MASTER PINNACE_CONFIG=$PINNACE_CONFIG
  .venv/bin/pinnace get nodes
  .venv/bin/pinnace get pods -o wide
  .venv/bin/pinnace get events
  curl -s $LB | grep 'Served by'
  .venv/bin/pinnace scale deployment $DEPLOY --replicas 2
  .venv/bin/pinnace get statefulsets; .venv/bin/pinnace get pvc -o wide    # Redis, its claim
  docker exec \$(docker ps -q --filter label=pinnace.pod=redis-0 --filter label=pinnace.container) redis-cli get demo-key
  curl -s --resolve hello.demo:$PINNACE_INGRESS_PORT:$PINNACE_BIND http://hello.demo:$PINNACE_INGRESS_PORT/ | grep message
  .venv/bin/pinnace get ingress
  $COMPOSE_HINT start node-${victim##*-}    # bring the killed node back
  $COMPOSE_HINT logs master
Stop and remove it all: make demo-down
TXT
}

# Requests against the load balancer, one after the other, until $work/stop appears (at most
# 120 s): one line each, "<unix time sent> <HTTP status> <seconds taken> <hostname>".
request_loop() {
  local deadline=$((SECONDS + 120)) sent out status took
  while [[ ! -e $work/stop ]] && ((SECONDS < deadline)); do
    sent=$(now)
    out=$(curl -s -m 10 -w '\n%{http_code} %{time_total}' "$LB" 2>/dev/null || true)
    read -r status took <<<"$(tail -n1 <<<"$out")"
    printf '%s %s %s %s\n' "$sent" "${status:-000}" "${took:-0}" "$(served_by <<<"$out" || true)"
  done
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

kill_a_node() {
  local node pods count t0 t_notready="" t_running="" lb_all="" i
  # The node with the most pods makes the biggest hole.
  victim=$(query pods "
from collections import Counter
print(Counter(p['spec'].get('nodeName', '') for p in items).most_common(1)[0][0])")
  pods=$(query pods "print(*sorted(p['metadata']['name'] for p in items if p['spec'].get('nodeName') == '$victim'))")
  count=$(wc -w <<<"$pods")
  step "killing node $victim (its agent container and its $count pods) under a stream of requests"
  local agent
  agent=$(compose ps -q "node-${victim##*-}")
  [[ -n $agent ]] || fail "no container for service node-${victim##*-}" "$COMPOSE_HINT ps"
  request_loop >"$work/requests" &
  local loop=$!
  sleep 1
  t0=$(now)
  docker kill "$agent" >/dev/null
  docker ps -aq --filter "label=pinnace.node=$victim" | xargs -r docker rm -f >/dev/null
  note "killed; watching the cluster (pinnace get nodes/pods) and the requests..."
  local timeline=("0.0 $victim killed: agent container stopped, $count pod containers removed")
  for ((i = 0; i < 200; i++)); do
    if [[ -z $t_notready && $(node_status "$victim") != True ]]; then
      t_notready=$(elapsed "$t0")
      timeline+=("$t_notready $victim NotReady (seen by the CLI)")
    fi
    if [[ -n $t_notready && -z $t_running && $(serving_pods "$victim") -ge 5 ]]; then
      t_running=$(elapsed "$t0")
      timeline+=("$t_running $count pods rescheduled: 5/5 Running on the other nodes (seen by the CLI)")
      break
    fi
    sleep 0.2
  done
  [[ -n $t_running ]] || { touch "$work/stop"; wait "$loop"; fail "the pods of $victim were not replaced" "$BIN/pinnace get events"; }
  # The load balancer is up to date once every replacement pod has answered through it.
  local replacements
  replacements=$(query pods "print(*[p['metadata']['name'] for p in items if p['metadata']['name'] not in '$pods'.split()])")
  local want deadline=$((SECONDS + 20))
  want=$(tr ' ' '\n' <<<"$replacements" | sort -u) # nginx names its pod: the hostname
  while ((SECONDS < deadline)); do
    lb_all=$(awk -v t0="$t0" -v want="$(tr '\n' ' ' <<<"$want")" '
      BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) need[w[i]] = 1 }
      ($4 in need) && !($4 in seen) { seen[$4] = 1; if (++got == n) { printf "%.1f", $1 + $3 - t0; exit } }
    ' "$work/requests")
    [[ -n $lb_all ]] && break
    sleep 0.5
  done
  sleep 1
  touch "$work/stop"
  wait "$loop" || true
  if [[ -n $lb_all ]]; then
    timeline+=("$lb_all load balancer updated: every replacement pod has answered through it")
  else
    timeline+=("20.0 the load balancer did not send a request to every replacement pod within 20 s")
  fi
  printf '%s\n' "${timeline[@]}" | sort -g | while read -r at what; do
    printf '    +%5ss  %s\n' "$at" "$what"
  done
  awk '
    { n++; if ($2 != 200) bad++; if ($3 > max) max = $3 }
    END { printf "    requests through the load balancer from 1 s before the kill: %d sent, %d failed, slowest %.2f s\n", n, bad, max }
  ' "$work/requests"
  step "pinnace get pods -o wide"
  pinnace get pods -o wide
  pinnace get nodes
  step "what happened (pinnace get events)"
  pinnace get events | tail -n 12
}

# redis-0's node and container id once it is Running and ready (nothing before).
redis_state() { query pods "
for p in items:
    cs = p['status'].get('containerStatuses') or [{}]
    if (p['metadata']['name'] == 'redis-0' and not p['metadata'].get('deletionTimestamp')
            and p['status'].get('phase') == 'Running' and all(c.get('ready') for c in cs)
            and cs[0].get('containerID')):
        print(p['spec']['nodeName'], cs[0]['containerID'].removeprefix('docker://'))"; }
redis_ready() { [[ -n $(redis_state) ]]; }
node_ready() { [[ $(node_status "$1") == True ]]; }
# Why redis-0 waits, while it is Pending without a node (nothing otherwise).
redis_pending() { query pods "
for p in items:
    if p['metadata']['name'] == 'redis-0' and p['status'].get('phase') == 'Pending' and not p['spec'].get('nodeName'):
        print(p['status'].get('message') or p['status'].get('reason') or 'not scheduled')"; }
# True once redis-0 is Running and ready again in a container (re)started after $1 (unix time)
# that answers redis-cli.
redis_back_after() {
  local node cid started
  read -r node cid <<<"$(redis_state)"
  [[ -n $cid ]] || return 1
  started=$(docker inspect --format '{{if .State.Running}}{{.State.StartedAt}}{{end}}' "$cid") || return 1
  [[ -n $started ]] && awk -v a="$(date -d "$started" +%s.%N)" -v b="$1" 'BEGIN { exit !(a > b) }' &&
    [[ $(docker exec "$cid" redis-cli ping 2>/dev/null) == PONG ]]
}

# Writes "<container id> <value of demo-key>" to $work/value, read in redis-0's container.
read_demo_key() {
  local node cid value
  read -r node cid <<<"$(redis_state)"
  [[ -n $cid ]] && value=$(docker exec "$cid" redis-cli get demo-key) && echo "$cid $value" >"$work/value"
}

# The stateful example: a key written to Redis on its claim survives the kill of its container
# and of the agent that runs it.
stateful_redis() {
  local node cid service agent volume t0 value timeline=()
  step "a stateful example: pinnace apply -f examples/redis/ (Redis, a StatefulSet with a 64Mi claim)"
  pinnace apply -f examples/redis/ || fail "applying examples/redis/"
  wait_for 60 "redis-0 Running and ready" redis_ready ||
    fail "redis-0 is not running" "$BIN/pinnace get events; $BIN/pinnace get pvc -o wide"
  read -r node cid <<<"$(redis_state)"
  service="node-${node##*-}"
  agent=$(compose ps -q "$service")
  [[ -n $agent ]] || fail "no container for service $service" "$COMPOSE_HINT ps"
  pinnace get pvc -o wide
  volume=$(docker inspect --format '{{range .Mounts}}{{if eq .Destination "/data"}}{{.Name}}{{end}}{{end}}' "$cid")
  note "redis-0 runs on $node in container ${cid:0:12}; its claim data-redis-0 is the Docker volume $volume"

  step "writing a key: docker exec ${cid:0:12} redis-cli set demo-key hello"
  docker exec "$cid" redis-cli set demo-key hello | sed 's/^/    /'
  [[ $(docker exec "$cid" redis-cli get demo-key) == hello ]] || fail "redis did not keep demo-key" "docker logs $cid"

  step "killing redis-0's container, then its node's agent ($COMPOSE_HINT stop/start $service)"
  t0=$(now)
  docker kill "$cid" >/dev/null
  timeline+=("0.0 redis-0's container ${cid:0:12} killed (docker kill)")
  # The agent goes down and comes back in the background while the CLI watches.
  : >"$work/agent"
  (
    compose stop -t 5 "$service" >/dev/null 2>&1 && echo "$(elapsed "$t0") agent $node stopped ($COMPOSE_HINT stop $service)" &&
      compose start "$service" >/dev/null 2>&1 && echo "$(elapsed "$t0") agent $node started again ($COMPOSE_HINT start $service)"
  ) >"$work/agent" 2>&1 &
  local restarter=$! since status first="" t_first="" t_notready="" t_pending="" t_ready="" t_back=""
  local pending deadline=$((SECONDS + 40))
  since=$(awk -v t="$t0" 'BEGIN { printf "%.3f", t }')
  while ((SECONDS < deadline)); do
    status=$(node_status "$node")
    if [[ -z $t_notready && $status != True ]]; then
      t_notready=$(elapsed "$t0")
      timeline+=("$t_notready $node not Ready (Ready=${status:-gone}, seen by the CLI)")
    fi
    if [[ -z $t_pending ]]; then
      pending=$(redis_pending)
      [[ -n $pending ]] && t_pending=$(elapsed "$t0") && timeline+=("$t_pending redis-0 Pending, not moved: $pending")
    fi
    if [[ -n $t_notready && -z $t_ready && $status == True ]]; then
      t_ready=$(elapsed "$t0")
      timeline+=("$t_ready $node Ready again (seen by the CLI)")
    fi
    if (($(wc -l <"$work/agent") >= 2)); then
      if redis_back_after "$since"; then
        t_back=$(elapsed "$t0")
        break
      fi
    elif [[ -z $t_first ]] && redis_back_after "$since"; then
      t_first=$(elapsed "$t0")
      read -r _ first <<<"$(redis_state)"
      timeline+=("$t_first redis-0 Running and ready again in container ${first:0:12} (restarted by its agent)")
    elif ! kill -0 "$restarter" 2>/dev/null; then
      break # compose failed: said below
    fi
    sleep 0.2
  done
  wait "$restarter" || fail "stopping and starting $service" "$COMPOSE_HINT logs $service"
  while read -r line; do timeline+=("$line"); done <"$work/agent"
  [[ -n $t_back ]] || fail "redis-0 did not come back on $node within 40 s" \
    "$BIN/pinnace get events; $COMPOSE_HINT logs $service"
  if [[ -n $t_notready && -z $t_ready ]]; then
    wait_for 20 "$node Ready again" node_ready "$node" || fail "$node did not come back" "$COMPOSE_HINT logs $service"
    timeline+=("$(elapsed "$t0") $node Ready again (seen by the CLI)")
  fi
  read -r node cid <<<"$(redis_state)"
  if [[ $cid == "$first" ]]; then
    timeline+=("$t_back redis-0 still Running on $node in container ${cid:0:12} after the agent's return (adopted)")
  else
    timeline+=("$t_back redis-0 Running and ready on $node in container ${cid:0:12} after the agent's return")
  fi
  # Read where redis-0 runs now (its container may still be replaced by the returning agent).
  wait_for 15 "redis-cli get demo-key in redis-0" read_demo_key ||
    fail "redis-0 does not answer redis-cli" "$BIN/pinnace get events; $COMPOSE_HINT logs $service"
  read -r cid value <"$work/value"
  timeline+=("$(elapsed "$t0") docker exec ${cid:0:12} redis-cli get demo-key -> \"$value\"")
  printf '%s\n' "${timeline[@]}" | sort -g | while read -r at what; do printf '    +%5ss  %s\n' "$at" "$what"; done
  [[ $value == hello ]] || fail "demo-key is \"$value\" after the restart, not \"hello\": the data was lost" \
    "docker logs $cid"
  note "the key written before the kills is still there: it lives on the claim ($volume), not in a container"
}

# The page title and message a host name gets through the Ingress port ($1: the host).
through_ingress() {
  curl -fsS -m 5 --resolve "$1:$PINNACE_INGRESS_PORT:$PINNACE_BIND" "http://$1:$PINNACE_INGRESS_PORT/" |
    grep -E '<title>|id="message"' | sed -e 's/<[^>]*>//g' | tr -s ' \n' ' '
}
hello_served() { [[ $(through_ingress hello.demo) == *"hello from pinnace"* ]]; }

# Two web apps behind one port, told apart by host name (examples/ingress/).
ingress_by_host() {
  local host
  step "an Ingress routing by host: pinnace apply -f examples/ingress/ (a second web app and the Ingress)"
  pinnace apply -f examples/ingress/ || fail "applying examples/ingress/"
  wait_for 60 "hello.demo through the Ingress on $PINNACE_BIND:$PINNACE_INGRESS_PORT" hello_served ||
    fail "the Ingress does not serve hello.demo" "$BIN/pinnace get ingress; $BIN/pinnace get events; $COMPOSE_HINT logs master"
  pinnace get ingress
  for host in web.demo hello.demo; do
    note "curl --resolve $host:$PINNACE_INGRESS_PORT:$PINNACE_BIND http://$host:$PINNACE_INGRESS_PORT/ -> $(through_ingress "$host")"
  done
}

# A hello pod: "<node> <container id>" once one is Running (nothing before).
hello_pod() { query pods "
for p in items:
    cs = p['status'].get('containerStatuses') or [{}]
    if (p['metadata'].get('labels', {}).get('app') == 'hello' and p['status'].get('phase') == 'Running'
            and not p['metadata'].get('deletionTimestamp') and cs[0].get('containerID')):
        print(p['spec']['nodeName'], cs[0]['containerID'].removeprefix('docker://'))
        break"; }
# GET http://$2/ from inside container $1 (busybox's wget: Debian's static 1.35 crashes on -T,
# hence timeout).
wget_in() { docker exec "$1" timeout 5 wget -qO- "http://$2/"; }
nginx_answers_in() { wget_in "$1" "$2" | grep -q 'id="hostname"'; }
# The address a name resolves to inside container $1 (busybox nslookup, the pod's resolv.conf).
resolved_in() { docker exec "$1" nslookup "$2" 2>/dev/null | awk '/^Address/ { a = $NF } END { print a }'; }
node_of_pod() { query pods "print(*[p['spec'].get('nodeName', '') for p in items if p['metadata']['name'] == '$1'])"; }

# Two web apps on port 80 side by side, each its own cluster IP; one reached by name from the
# other's pods, through the node proxy of the pod's own node (compose/docker-compose.yml says
# how a pod's packets get there).
services_by_name() {
  local node cid host n i name from_other=""
  step "Services by name from inside a pod: the seed's nginx and hello, both on port 80"
  pinnace get services
  wait_for 60 "a hello pod Running" hello_pod || fail "no hello pod is running" "$BIN/pinnace get pods -o wide"
  read -r node cid <<<"$(hello_pod)"
  note "from hello's pod on $node (container ${cid:0:12}; its DNS server and node proxy are $node's agent):"
  wait_for 60 "my-web-app-service answering inside hello's pod" nginx_answers_in "$cid" my-web-app-service ||
    fail "hello's pod cannot reach my-web-app-service by name" \
      "docker exec ${cid:0:12} cat /etc/resolv.conf; docker exec ${cid:0:12} ip route; $COMPOSE_HINT logs node-${node##*-}"
  for name in my-web-app-service hello.default.svc.cluster.local; do
    note "docker exec ${cid:0:12} nslookup $name -> $(resolved_in "$cid" "$name")"
  done
  # Round robin over the seed's pods: ask until one on another node has answered.
  for ((i = 0; i < 20; i++)); do
    host=$(wget_in "$cid" my-web-app-service | served_by) || continue
    n=$(node_of_pod "$host")
    note "docker exec ${cid:0:12} wget -qO- http://my-web-app-service/ -> nginx of pod $host on $n"
    if [[ $n != "$node" ]]; then
      from_other=$n
      break
    fi
  done
  [[ -n $from_other ]] || fail "no pod of my-web-app-service on another node answered hello's pod" \
    "$BIN/pinnace get pods -o wide; $COMPOSE_HINT logs node-${node##*-}"
  note "docker exec ${cid:0:12} wget -qO- http://hello.default.svc.cluster.local/ -> \"$(wget_in "$cid" hello.default.svc.cluster.local |
    grep -o 'id="message">[^<]*' | cut -d'>' -f2)\""
  note "$node's pod reached $from_other's nginx by name: the cluster IP is served by $node's own node proxy"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) fail "usage: $0 up|down" "compose/demo.sh" ;;
esac
