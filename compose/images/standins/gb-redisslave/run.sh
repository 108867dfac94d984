#!/bin/sh
# The follower's command, as upstream's run.sh: replicate the leader, found by DNS (the Service
# name redis-master) unless GET_HOSTS_FROM=env says to take the Service's variable. redis-server
# keeps retrying the leader until it answers, so the order pods start in does not matter.
set -eu
if [ "${GET_HOSTS_FROM:-dns}" = env ]; then
	leader=${REDIS_MASTER_SERVICE_HOST:?GET_HOSTS_FROM=env but REDIS_MASTER_SERVICE_HOST is not set}
else
	leader=redis-master
fi
mkdir -p /data
exec redis-server --replicaof "$leader" 6379 --protected-mode no --dir /data
