# Sourced by the scripts that drive llama.cpp's server (server_check.sh, bench/pipeline.sh):
#
#   start_llama_server LOG -m MODEL [llama-server flags...]
#
# starts "$LLAMA_BIN/llama-server" (source target/llamacpp/env.sh first) on a free loopback
# port with its output in LOG, stops it when the calling script exits, waits until /health
# answers (or shows the log's tail and exits 1 if it died), and sets llama_url to its
# OpenAI-compatible base URL (http://127.0.0.1:PORT/v1).
start_llama_server() {
    local log="$1"; shift
    local port
    port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
    "$LLAMA_BIN/llama-server" "$@" --port "$port" >"$log" 2>&1 &
    llama_pid=$!
    trap 'kill $llama_pid 2>/dev/null || true' EXIT
    for _ in $(seq 1 600); do
        curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
        kill -0 "$llama_pid" 2>/dev/null || { tail -20 "$log" >&2; exit 1; }
        sleep 0.5
    done
    llama_url="http://127.0.0.1:$port/v1"
}
