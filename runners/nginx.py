"""nginx in front of the replicas, as the ingress of a cluster would be: a generated config (one
upstream of the replicas, keep-alive connections to them, the same body limit as the workers),
run in the foreground from a temporary folder that holds its pid file, logs and temp paths, so
it needs nothing under /var and stops with the runner. HTTP replicas are proxied over HTTP/1.1,
gRPC replicas with `grpc_pass` over HTTP/2 (Debian's nginx-light has the grpc module)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from bench.load.sut import RunnerError
from runners.processes import Child, spawn

_FALLBACK = "/usr/sbin/nginx"


def nginx_binary() -> str:
    """nginx on PATH or in /usr/sbin; RunnerError naming the package to install otherwise."""
    found = shutil.which("nginx") or (_FALLBACK if os.access(_FALLBACK, os.X_OK) else None)
    if found is None:
        raise RunnerError(
            "strategy.load_balancer=nginx needs nginx: install the Debian package nginx-light "
            "(apt-get install -y nginx-light), or use strategy.load_balancer=none"
        )
    return found


def nginx_config(
    upstreams: Sequence[str], listen: str, max_body_bytes: int, workdir: Path, protocol: str
) -> str:
    """The whole nginx.conf: `listen` proxies `protocol` (http, grpc) to `upstreams`
    ("host:port") round robin."""
    servers = "\n".join(f"        server {address};" for address in upstreams)
    proxy = _GRPC if protocol == "grpc" else _HTTP
    return f"""\
daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    client_max_body_size {max_body_bytes};
    # Bodies up to this size stay in memory rather than going to a temp file.
    client_body_buffer_size 1m;
    # Longer than the client's own keep-alive, so the client closes idle connections first.
    keepalive_timeout 650s;
    keepalive_requests 1000000;

    upstream replicas {{
{servers}
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }}

    server {{
{proxy.format(listen=listen)}
    }}
}}
"""


_HTTP = """\
        listen {listen};
        location / {{
            proxy_pass http://replicas;
            # Keep-alive to the upstream needs HTTP/1.1 and no "Connection: close".
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}"""

# gRPC is HTTP/2 both ways (cleartext, prior knowledge); the upstream's keep-alive
# connections carry many streams each. No read timeout short enough to cut a slow model.
_GRPC = """\
        listen {listen} http2;
        http2_max_concurrent_streams 1024;
        location / {{
            grpc_pass grpc://replicas;
            grpc_read_timeout 3600s;
            grpc_send_timeout 3600s;
        }}"""


def start_nginx(
    upstreams: Sequence[str], listen: str, max_body_bytes: int, workdir: Path, protocol: str
) -> Child:
    """Write the config under `workdir` and start nginx on it in the foreground. Started as
    root, nginx runs its worker as nobody, which must reach the temp folders: `workdir` is made
    readable to all, and the folders above it must be too."""
    binary = nginx_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o755)
    conf = workdir / "nginx.conf"
    conf.write_text(nginx_config(upstreams, listen, max_body_bytes, workdir, protocol))
    argv = [binary, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "error.log")]
    return spawn("nginx", argv, workdir / "nginx.log")
