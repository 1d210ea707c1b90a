#!/usr/bin/env bash
# Label the answers of a server you can't change (here: Ollama's OpenAI-compatible API).
# Clients then talk to http://127.0.0.1:8080/v1 instead of the upstream.
set -euo pipefail
cd "$(dirname "$0")"
[ -f keys/labeler.pem ] || labeler keygen --out keys
exec labeler --config labeler.toml proxy --upstream "${UPSTREAM:-http://127.0.0.1:11434}" --port "${PORT:-8080}"
