-- wrk script: the benchmark's POST /v1/chat/completions, body read from $BENCH_BODY_FILE
-- (default bench/request.json, relative to the directory wrk runs in).
local path = os.getenv("BENCH_BODY_FILE") or "bench/request.json"
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Tenant-ID"] = "bench"
wrk.headers["Authorization"] = "Bearer sk-bench"
