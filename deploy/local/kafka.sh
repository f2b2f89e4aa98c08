#!/usr/bin/env bash
# Apache Kafka 4.x on loopback, for tests and local trials: resolved from Maven Central, KRaft mode,
# each node a combined controller+broker. `make run` does not need it (it starts the embedded tansu).
#
#   deploy/local/kafka.sh fetch                    resolve Kafka into the cache (.aietl/kafka/lib)
#   deploy/local/kafka.sh start [--brokers 1|3] [--dir DIR] [--secure TLS_DIR] [--heap SIZE] [--no-fetch]
#   deploy/local/kafka.sh stop [--dir DIR] [--node N] [--purge]
#   deploy/local/kafka.sh status [--dir DIR]
#
# `start` formats the storage of a new cluster in DIR (default .aietl/kafka/cluster) on free loopback
# ports, starts its nodes and waits until every broker answers; it prints the bootstrap servers. On an
# existing cluster it starts only the nodes that are not running (a node killed by a test comes back
# with its data, ports and id). `stop` ends exactly the processes this script started (pid files, each
# checked against its command line); `--node N` stops one node, `--purge` deletes DIR afterwards.
# `--no-fetch` (the tests use it) refuses to start rather than download Kafka at that moment.
#
# --secure TLS_DIR adds a SASL_SSL listener (SCRAM-SHA-512 over TLS) on every node: TLS_DIR holds
# broker.pem (the broker's certificate chain and unencrypted PKCS#8 key); the SCRAM user is created at
# format time from KAFKA_SCRAM_USERNAME and KAFKA_SCRAM_PASSWORD. DIR/cluster.env then has SECURE_BOOTSTRAP.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/deploy/local/kafka"
CACHE="${AIETL_KAFKA_CACHE:-$ROOT/.aietl/kafka}"
LIB="$CACHE/lib"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}
die() { echo "kafka.sh: $*" >&2; exit 1; }

fetch() {
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null || apt_install maven
  local stamp; stamp=$(sha256sum "$HERE/pom.xml" | cut -c1-16)
  if [ -f "$LIB/.resolved-$stamp" ]; then return; fi
  echo "kafka.sh: resolving Apache Kafka with Maven into $LIB" >&2
  rm -rf "$LIB.tmp"
  mvn -q -B -f "$HERE/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$LIB.tmp" -DincludeScope=runtime >&2
  rm -rf "$LIB" && mv "$LIB.tmp" "$LIB" && touch "$LIB/.resolved-$stamp"
}

free_ports() {  # N free loopback ports
  python3 - "$1" <<'PY'
import socket, sys
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); held.append(s)
print(" ".join(str(s.getsockname()[1]) for s in held))
PY
}

running() {  # pid file -> true when its process is alive and is this cluster's node
  local pid_file=$1 pid
  [ -f "$pid_file" ] || return 1
  pid=$(cat "$pid_file")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$(dirname "$pid_file")/server.properties"
}

java_class() {  # run one Kafka tool class in a small JVM
  java -Xmx192m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
    -Dkafka.logs.dir="$DIR" -cp "$LIB/*" "$@"
}

write_cluster() {  # new cluster: ports, id, one server.properties per node, formatted storage
  local count=$1 secure=$2 ports voters="" bootstrap="" secure_bootstrap="" node
  # shellcheck disable=SC2207
  ports=($(free_ports $((count * 3))))
  for node in $(seq 1 "$count"); do
    voters+="${voters:+,}$node@127.0.0.1:${ports[$(((node - 1) * 3 + 1))]}"
    bootstrap+="${bootstrap:+,}127.0.0.1:${ports[$(((node - 1) * 3))]}"
    secure_bootstrap+="${secure_bootstrap:+,}127.0.0.1:${ports[$(((node - 1) * 3 + 2))]}"
  done
  local cluster_id; cluster_id=$(java_class kafka.tools.StorageTool random-uuid)
  local replicas=$((count < 3 ? count : 3)) min_isr=$((count < 3 ? 1 : 2))
  mkdir -p "$DIR"
  for node in $(seq 1 "$count"); do
    local client=${ports[$(((node - 1) * 3))]} controller=${ports[$(((node - 1) * 3 + 1))]}
    local secured=${ports[$(((node - 1) * 3 + 2))]} home="$DIR/node-$node"
    mkdir -p "$home/data"
    {
      echo "process.roles=broker,controller"
      echo "node.id=$node"
      echo "controller.quorum.voters=$voters"
      echo "controller.listener.names=CONTROLLER"
      echo "inter.broker.listener.name=PLAINTEXT"
      if [ -n "$secure" ]; then
        echo "listeners=PLAINTEXT://127.0.0.1:$client,CONTROLLER://127.0.0.1:$controller,SASL_SSL://127.0.0.1:$secured"
        echo "advertised.listeners=PLAINTEXT://127.0.0.1:$client,SASL_SSL://127.0.0.1:$secured"
        echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
        echo "sasl.enabled.mechanisms=SCRAM-SHA-512"
        echo "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
        echo "listener.name.sasl_ssl.ssl.keystore.type=PEM"
        echo "listener.name.sasl_ssl.ssl.keystore.location=$secure/broker.pem"
      else
        echo "listeners=PLAINTEXT://127.0.0.1:$client,CONTROLLER://127.0.0.1:$controller"
        echo "advertised.listeners=PLAINTEXT://127.0.0.1:$client"
        echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
      fi
      echo "log.dirs=$home/data"
      # Topics are created by the platform (shared.bus.ensure_topics) with their replication and
      # min.insync.replicas; nothing is created by a client's metadata request.
      echo "auto.create.topics.enable=false"
      echo "offsets.topic.replication.factor=$replicas"
      echo "offsets.topic.num.partitions=12"
      echo "transaction.state.log.replication.factor=$replicas"
      echo "transaction.state.log.min.isr=$min_isr"
      echo "transaction.state.log.num.partitions=6"
      echo "group.initial.rebalance.delay.ms=0"
      # Tests run consumers with short sessions, so that a killed one's partitions move on quickly.
      echo "group.min.session.timeout.ms=1000"
      echo "unclean.leader.election.enable=false"
      echo "num.network.threads=2"
      echo "num.io.threads=4"
      echo "log.retention.hours=24"
    } >"$home/server.properties"
    local scram=()
    if [ -n "$secure" ]; then
      [ -n "${KAFKA_SCRAM_USERNAME:-}" ] && [ -n "${KAFKA_SCRAM_PASSWORD:-}" ] ||
        die "--secure needs KAFKA_SCRAM_USERNAME and KAFKA_SCRAM_PASSWORD"
      scram=(--add-scram "SCRAM-SHA-512=[name=$KAFKA_SCRAM_USERNAME,password=$KAFKA_SCRAM_PASSWORD]")
    fi
    java_class kafka.tools.StorageTool format -t "$cluster_id" -c "$home/server.properties" "${scram[@]}" \
      >"$home/format.log" 2>&1 || { cat "$home/format.log" >&2; die "formatting node $node failed"; }
  done
  {
    echo "BROKERS=$count"
    echo "BOOTSTRAP=$bootstrap"
    [ -n "$secure" ] && echo "SECURE_BOOTSTRAP=$secure_bootstrap"
    echo "CLUSTER_ID=$cluster_id"
  } >"$DIR/cluster.env"
}

start_node() {
  local home="$DIR/node-$1"
  rm -f "$home/pid"
  setsid nohup java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dkafka.logs.dir="$home" \
    -cp "$LIB/*" kafka.Kafka "$home/server.properties" >"$home/stdout.log" 2>&1 </dev/null &
  echo $! >"$home/pid"
}

wait_for_brokers() {  # until every broker answers (ApiVersions from each one the metadata lists)
  local deadline=$((SECONDS + ${KAFKA_START_TIMEOUT:-180})) answered=0 node
  while [ $SECONDS -lt $deadline ]; do
    for node in $(seq 1 "$BROKERS"); do
      running "$DIR/node-$node/pid" || {
        tail -n 40 "$DIR/node-$node/server.log" "$DIR/node-$node/stdout.log" >&2 2>/dev/null || true
        die "node $node exited"
      }
    done
    answered=$(java_class org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$BOOTSTRAP" \
      2>/dev/null | grep -c -- '-> (' || true)
    [ "$answered" -ge "$BROKERS" ] && return
    sleep 1
  done
  die "$answered of $BROKERS brokers answer after ${KAFKA_START_TIMEOUT:-180}s (logs in $DIR/node-*/server.log)"
}

start() {
  local count=1 secure="" resolve=1
  HEAP=512m
  while [ $# -gt 0 ]; do
    case $1 in
      --brokers) count=$2; shift 2 ;;
      --dir) DIR=$2; shift 2 ;;
      --secure) secure=$(cd "$2" && pwd); shift 2 ;;
      --heap) HEAP=$2; shift 2 ;;
      --no-fetch) resolve=""; shift ;;
      *) die "unknown option $1" ;;
    esac
  done
  case $count in 1 | 3) ;; *) die "--brokers must be 1 or 3" ;; esac
  if [ -n "$resolve" ]; then
    fetch
  elif ! ls "$LIB"/.resolved-* >/dev/null 2>&1; then
    die "Apache Kafka is not resolved yet: run deploy/local/kafka.sh fetch (make test does)"
  fi
  if [ ! -f "$DIR/cluster.env" ]; then write_cluster "$count" "$secure"; fi
  # shellcheck disable=SC1091
  . "$DIR/cluster.env"
  local node
  for node in $(seq 1 "$BROKERS"); do
    running "$DIR/node-$node/pid" || start_node "$node"
  done
  wait_for_brokers
  echo "$BOOTSTRAP"
}

stop() {
  local only="" purge=""
  while [ $# -gt 0 ]; do
    case $1 in
      --dir) DIR=$2; shift 2 ;;
      --node) only=$2; shift 2 ;;
      --purge) purge=1; shift ;;
      *) die "unknown option $1" ;;
    esac
  done
  [ -f "$DIR/cluster.env" ] || return 0
  local pid_file pid stopping=()
  for pid_file in "$DIR"/node-*/pid; do
    [ -e "$pid_file" ] || continue
    [ -z "$only" ] || [ "$pid_file" = "$DIR/node-$only/pid" ] || continue
    if running "$pid_file"; then
      pid=$(cat "$pid_file")
      kill -TERM "$pid"
      stopping+=("$pid")
    fi
  done
  # One node hands its leaderships over before it goes (a rolling restart waits for that); a whole
  # cluster stopping at once loses its controller quorum on the way, so it gets less patience.
  local patience=15
  [ -n "$only" ] && patience=60
  local deadline=$((SECONDS + patience))
  for pid in "${stopping[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  done
  for pid_file in "$DIR"/node-*/pid; do
    [ -z "$only" ] || [ "$pid_file" = "$DIR/node-$only/pid" ] || continue
    rm -f "$pid_file"
  done
  if [ -n "$purge" ] && [ -z "$only" ]; then rm -rf "$DIR"; fi
}

status() {
  while [ $# -gt 0 ]; do
    case $1 in
      --dir) DIR=$2; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  [ -f "$DIR/cluster.env" ] || { echo "no cluster in $DIR"; return 1; }
  # shellcheck disable=SC1091
  . "$DIR/cluster.env"
  echo "bootstrap: $BOOTSTRAP"
  local node up=0
  for node in $(seq 1 "$BROKERS"); do
    if running "$DIR/node-$node/pid"; then
      echo "node $node: running (pid $(cat "$DIR/node-$node/pid"))"
      up=$((up + 1))
    else
      echo "node $node: stopped"
    fi
  done
  [ "$up" -eq "$BROKERS" ]
}

DIR="$CACHE/cluster"
command=${1:-}
shift || true
case $command in
  fetch) fetch ;;
  start) start "$@" ;;
  stop) stop "$@" ;;
  status) status "$@" ;;
  *) die "usage: kafka.sh fetch | start [--brokers 1|3] [--dir DIR] [--secure TLS_DIR] | stop [--dir DIR] [--node N] [--purge] | status [--dir DIR]" ;;
esac
