#!/usr/bin/env bash
# Make sure the services the integration tests use are running on this machine.
# Redis is started here when it is installed but not running (it keeps nothing on disk).
# PostgreSQL is expected to be running already (see README "Production set-up").
# Whether a missing service fails the run is decided by tests/conftest.py: under CI=true it does.
set -uo pipefail

redis_host=${CATALOG_AI_TEST_REDIS_HOST:-127.0.0.1}
redis_port=${CATALOG_AI_TEST_REDIS_PORT:-6379}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

if ! port_open "$redis_host" "$redis_port"; then
  if [[ "$redis_host" == 127.0.0.1 ]] && command -v redis-server >/dev/null; then
    echo "services: Redis is not running on $redis_host:$redis_port; starting redis-server"
    mkdir -p /tmp/catalog-ai-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port "$redis_port" --save "" \
      --appendonly no --dir /tmp/catalog-ai-redis --logfile /tmp/catalog-ai-redis/redis.log
    for _ in $(seq 50); do port_open "$redis_host" "$redis_port" && break; sleep 0.1; done
  fi
fi
port_open "$redis_host" "$redis_port" || echo "services: WARNING Redis unreachable at $redis_host:$redis_port"

pg_host=${CATALOG_AI_TEST_PG_HOST:-127.0.0.1}
pg_port=${CATALOG_AI_TEST_PG_PORT:-5432}
port_open "$pg_host" "$pg_port" || echo "services: WARNING PostgreSQL unreachable at $pg_host:$pg_port"
exit 0
