#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis that tests use are running (127.0.0.1:5432 and :6379).
set -euo pipefail
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  for _ in $(seq 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi
# Go (Debian's golang-go) renders Ollama Modelfile templates in the export tests (tests/support/ollama.py).
if ! command -v go >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq golang-go) || (sudo apt-get update -qq && sudo apt-get install -y -qq golang-go)
fi
echo "services: postgresql and redis are up"
