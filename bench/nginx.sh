# Sourced by the attacker benchmarks: start_nginx PORT DIR starts one nginx worker on
# 127.0.0.1:PORT (no access log, keep-alive without limit, a 2-byte body: the cheapest server the
# loopback allows, so the figures are the attacker's) with its files in DIR, and stops it on exit.
start_nginx() {
    local port=$1 dir=$2
    cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log;
events { worker_connections 65536; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$port reuseport backlog=65535;
        location / { return 200 "ok"; }
    }
}
CONF
    nginx -c "$dir/nginx.conf"
    # shellcheck disable=SC2064 # expand now: the trap must stop this instance's config
    trap "nginx -c '$dir/nginx.conf' -s stop 2>/dev/null || true" EXIT
    sleep 0.5
}
