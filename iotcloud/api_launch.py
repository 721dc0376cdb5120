"""How the REST API process is launched and checked: gunicorn's command line and environment, the
URL of its liveness probe, and the lines of the start-up banner that name it. `iotcloud run` (the
supervisor) and `iotcloud api` (one process, for containers) both launch it from here."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
import time
import urllib.request

from iotcloud.config import Settings


def api_environment(settings: Settings, env: dict) -> dict:
    """With several workers their metrics meet in files (prometheus_client's multiprocess mode, which
    reads this variable itself); a fresh directory per start, so a dead run's counters do not add up."""
    folder = settings.metrics_multiprocess_dir
    if folder is None:
        return env
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    return {**env, "PROMETHEUS_MULTIPROC_DIR": str(folder)}


API_KEEP_ALIVE = 5  # seconds an idle connection may stay open (kept by its thread, or on the poller)


def gunicorn_command(settings: Settings) -> list[str]:
    # ApiWorker: gthread whose threads never wait for new clients, give a kept connection back when
    # the pool needs them, and that answers /healthz without a thread.
    # The HTTPS listener is TLS-wrapped by ApiWorker (not gunicorn's certfile, which would wrap both);
    # no sendfile, which would write a file's plain bytes past TLS.
    binds = [f"{settings.api_host}:{port}" for port in (settings.api_port, settings.api_https_port) if port]
    return [sys.executable, "-m", "gunicorn", "iotcloud.wsgi:app",
            *[arg for bind in binds for arg in ("--bind", bind)], "--no-sendfile",
            "--workers", str(settings.api_workers), "--worker-class", "iotcloud.api_worker.ApiWorker",
            "--threads", str(settings.api_threads), "--keep-alive", str(API_KEEP_ALIVE), "--no-control-socket",
            "--graceful-timeout", "10", "--log-level", "warning"]


def api_lines(s: Settings) -> list[str]:
    lines = []
    if s.api_https_port:
        trust = f"your certificate {s.tls_cert_file}" if s.tls_cert_file else f"curl --cacert {s.pki_dir / 'ca.pem'}"
        lines.append(f"  REST API        {s.api_https_url}   ({trust})")
    if s.api_port:
        lines.append(f"  REST API        {s.api_url}   (plain HTTP, for loopback; OpenAPI: /openapi.json)")
    return lines


def health_url(s: Settings) -> tuple[str, ssl.SSLContext | None]:
    """Where the supervisor checks the API: plain HTTP when it listens, else HTTPS."""
    if s.api_port:
        return f"http://127.0.0.1:{s.api_port}/healthz", None
    cafile = None if s.tls_cert_file else str(s.pki_dir / "ca.pem")
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = False  # a certificate you brought names your host, not the loopback address
    return f"https://127.0.0.1:{s.api_https_port}/healthz", context


def wait_until_healthy(url: str, context: ssl.SSLContext | None, process: subprocess.Popen,
                       timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with {process.returncode} during start-up")
        try:
            with urllib.request.urlopen(url, timeout=1, context=context) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")
