#!/usr/bin/env bash
# Starts the plain brokers the simulator tests talk to, when nothing listens on their ports yet:
# Mosquitto on 127.0.0.1:1883 (anonymous, loopback only) and RabbitMQ on 127.0.0.1:5672 (guest/guest,
# which RabbitMQ allows from loopback only). Machines of this kind start both before a session;
# anywhere else `make test` starts them here instead of letting the tests skip.
set -euo pipefail
state="${1:-.state/test-services}"
mkdir -p "$state"
state="$(cd "$state" && pwd)"
mqtt="${IOTCLOUD_TEST_MQTT_PORT:-1883}" amqp="${IOTCLOUD_TEST_AMQP_PORT:-5672}"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() {  # port seconds what
  local deadline=$((SECONDS + $2))
  until listening "$1"; do
    ((SECONDS < deadline)) || { echo "$3 did not start on 127.0.0.1:$1 (logs under $state)" >&2; exit 1; }
    sleep 0.2
  done
}

if ! listening $mqtt; then
  echo "==> starting Mosquitto on 127.0.0.1:$mqtt for the simulator tests"
  cat >"$state/mosquitto.conf" <<CONF
listener $mqtt 127.0.0.1
allow_anonymous true
persistence false
log_dest file $state/mosquitto.log
user $(id -un)
CONF
  "$(command -v mosquitto || echo /usr/sbin/mosquitto)" -d -c "$state/mosquitto.conf"
  wait_for $mqtt 10 Mosquitto
fi

if ! listening $amqp; then
  echo "==> starting RabbitMQ on 127.0.0.1:$amqp for the simulator tests (about 10 s)"
  export HOME="$state/rabbitmq" RABBITMQ_NODENAME=iotcloud-test-$amqp@localhost RABBITMQ_DIST_PORT=$((amqp + 20000)) RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
         RABBITMQ_NODE_PORT=$amqp RABBITMQ_MNESIA_BASE="$state/rabbitmq/mnesia" RABBITMQ_LOG_BASE="$state/rabbitmq/log" \
         RABBITMQ_PID_FILE="$state/rabbitmq/node.pid" RABBITMQ_CONF_ENV_FILE="$state/rabbitmq/env.conf" \
         RABBITMQ_CONFIG_FILE="$state/rabbitmq/rabbitmq" RABBITMQ_ENABLED_PLUGINS_FILE="$state/rabbitmq/enabled_plugins" \
         ERL_EPMD_ADDRESS=127.0.0.1
  mkdir -p "$HOME"
  : >"$RABBITMQ_CONF_ENV_FILE"
  echo "[]." >"$RABBITMQ_ENABLED_PLUGINS_FILE"
  printf 'listeners.tcp.default = 127.0.0.1:%s\nlog.console = false\n' "$amqp" >"$RABBITMQ_CONFIG_FILE.conf"
  /usr/lib/rabbitmq/bin/rabbitmq-server -detached
  /usr/lib/rabbitmq/bin/rabbitmqctl wait --timeout 60 "$RABBITMQ_PID_FILE" >/dev/null
  wait_for $amqp 30 RabbitMQ
fi
