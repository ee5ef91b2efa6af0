"""Requests per second through the full middleware stack versus a bare FastAPI app.

Both apps answer ``GET /health`` with ``{"status": "ok"}`` and no I/O:

* **bare**: a fresh ``FastAPI()`` with the same endpoint returning a dict;
* **project**: ``outreach.app.create_app(settings)``: CORS, the request-context
  middleware (request id, access log, security headers, body limit), the
  idempotent route class, exception handlers, response-model serialisation.

Each app runs in its own uvicorn process (127.0.0.1, a free port, the same
``uvicorn.Config``), with the project logging at INFO so the access line per
request is paid for (rendered as JSON, as in production, into a temporary file).
Load comes from a separate process holding several keep-alive connections.
Rounds alternate bare, project, bare, project, ... after a warm-up, and the
medians are compared because the machine is shared and noisy. As a cross-check
that other processes hardly disturb, the server CPU time per request of each
app is printed too (Linux ``/proc``).

Target: project rps / bare rps >= 0.5. Prints PASS or FAIL; exits 1 on FAIL.
With ``OUTREACH_TEST_REDIS_URL`` set the project app is configured with Redis, as
in production (jobs on Redis streams); ``/health`` itself touches neither Redis
nor the database.

    uv run python bench/api_overhead.py [--rounds 8] [--seconds 2] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from _common import Target, exit_code, redis_url, report

TARGET_RATIO = 0.5
HEALTH = "/health"
SCRIPT = str(Path(__file__).resolve())


# --------------------------------------------------------------------------- server


def build_bare_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def build_project_app(workdir: Path) -> Any:
    from outreach.app import create_app
    from outreach.config import Environment, Settings

    settings = Settings(
        _env_file=None,
        env=Environment.testing,
        secret_key="x" * 40,
        database_url=f"sqlite+aiosqlite:///{workdir}/bench.db",
        storage_path=workdir / "storage",
        embedded_scheduler=False,
        redis_url=redis_url(),
        log_level="INFO",  # production level: the access line per request is written
        log_json=True,  # production rendering
    )
    return create_app(settings)


def serve(kind: str, workdir: Path) -> None:
    """Child process: serve one app on a free port, printing the port on stdout."""
    import uvicorn

    app = build_bare_app() if kind == "bare" else build_project_app(workdir)
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto is TCP,
    # and without it Nagle + delayed ACKs cap every connection near 25 requests/s.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


# --------------------------------------------------------------------------- load
#
# The client is a minimal HTTP/1.1 keep-alive client on asyncio streams. On the
# reference machine httpx.AsyncClient tops out near 350 rps and aiohttp near
# 1,100 rps, both below what uvicorn serves, so they would measure the client;
# this one needs well under half a core at the server's limit. ``client cpu``
# in the output shows how busy it was.


class BadResponse(Exception):
    pass


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> None:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head[:-4].split(b"\r\n")
    length = -1
    for line in header_lines:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" or (name == b"connection" and b"close" in value):
            raise BadResponse(line.decode("latin-1"))
    if length < 0:
        raise BadResponse("no content-length")
    body = await reader.readexactly(length)
    if status_line.split(b" ", 2)[1] != b"200" or body != b'{"status":"ok"}':
        raise BadResponse(f"{status_line!r} {body[:200]!r}")


async def _measure(url: str, seconds: float, concurrency: int) -> dict[str, Any]:
    authority = url.split("/")[2]
    host, port = authority.rsplit(":", 1)
    path = "/" + url.split("/", 3)[3]
    request = f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: */*\r\n\r\n".encode()
    connections = [await asyncio.open_connection(host, int(port)) for _ in range(concurrency)]
    try:
        for reader, writer in connections:  # warm each connection before the clock starts
            for _ in range(3):
                await _get(reader, writer, request)
        counts = [0] * concurrency
        cpu_started = time.process_time()
        started = time.perf_counter()
        deadline = started + seconds

        async def worker(i: int) -> None:
            reader, writer = connections[i]
            while time.perf_counter() < deadline:
                await _get(reader, writer, request)
                counts[i] += 1

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    finally:
        for _, writer in connections:
            writer.close()
    return {
        "requests": sum(counts),
        "all_requests": sum(counts) + 3 * concurrency,  # with the warm-up ones
        "elapsed": elapsed,
        "rps": sum(counts) / elapsed,
        "client_cpu": cpu / elapsed,
    }


def load_loop() -> None:
    """Child process: for each ``url seconds concurrency`` line on stdin, print a JSON result."""
    for line in sys.stdin:
        url, seconds, concurrency = line.split()
        result = asyncio.run(_measure(url, float(seconds), int(concurrency)))
        print(json.dumps(result), flush=True)


# --------------------------------------------------------------------------- driver


def _server_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by ``pid``; None off Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_server(kind: str, workdir: Path) -> subprocess.Popen[str]:
    with (workdir / f"{kind}.log").open("w") as log:
        return subprocess.Popen(
            [sys.executable, SCRIPT, "serve", kind, str(workdir)],
            stdout=subprocess.PIPE,
            stderr=log,  # the project's access log lands here, not on the terminal
            text=True,
            cwd=workdir,
        )


def _wait_ready(kind: str, process: subprocess.Popen[str], workdir: Path) -> str:
    assert process.stdout is not None
    port = process.stdout.readline().strip()
    url = f"http://127.0.0.1:{port}{HEALTH}"
    deadline = time.monotonic() + 60
    while port.isdigit() and process.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return url
        except OSError:
            time.sleep(0.05)
    log = (workdir / f"{kind}.log").read_text()[-3000:]
    raise SystemExit(f"the {kind} server did not answer {url}:\n{log}")


class LoadClient:
    """The load generator, a separate long-lived process."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, SCRIPT, "load"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, url: str, seconds: float, concurrency: int) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(f"{url} {seconds} {concurrency}\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the load generator failed while driving {url}")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="measured rounds per app (>= 3)")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one round, seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up per app, seconds")
    parser.add_argument("--concurrency", type=int, default=8, help="keep-alive connections")
    args = parser.parse_args(argv)
    if args.rounds < 3:
        parser.error("--rounds must be at least 3")

    rps: dict[str, list[float]] = {"bare": [], "project": []}
    us: dict[str, list[float]] = {"bare": [], "project": []}  # server CPU per request
    client_cpu: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        workdir = Path(tmp)
        processes = {kind: _start_server(kind, workdir) for kind in rps}
        client: LoadClient | None = None
        try:
            urls = {kind: _wait_ready(kind, proc, workdir) for kind, proc in processes.items()}
            client = LoadClient()
            for url in urls.values():
                client.run(url, args.warmup, args.concurrency)
            print(f"warm-up done ({args.warmup:g} s each); {args.concurrency} connections")
            for round_no in range(1, args.rounds + 1):
                for kind, url in urls.items():
                    cpu_before = _server_cpu(processes[kind].pid)
                    result = client.run(url, args.seconds, args.concurrency)
                    cpu_after = _server_cpu(processes[kind].pid)
                    rps[kind].append(result["rps"])
                    client_cpu.append(result["client_cpu"])
                    cost = ""
                    if cpu_before is not None and cpu_after is not None:
                        us[kind].append((cpu_after - cpu_before) / result["all_requests"] * 1e6)
                        cost = f", server {us[kind][-1]:4.0f} cpu-us/request"
                    print(
                        f"round {round_no:>2} {kind:<8} {result['rps']:7.0f} rps "
                        f"({result['requests']} in {result['elapsed']:.2f} s{cost}, "
                        f"client cpu {result['client_cpu']:.0%})",
                        flush=True,
                    )
        finally:
            if client is not None:
                client.close()
            for process in processes.values():
                process.terminate()
            for process in processes.values():
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        with (workdir / "project.log").open("rb") as log:
            access_lines = sum(1 for line in log if b'"event": "request"' in line)

    bare = statistics.median(rps["bare"])
    project = statistics.median(rps["project"])
    ratio = project / bare
    paired = statistics.median(p / b for b, p in zip(rps["bare"], rps["project"], strict=True))
    print()
    print(f"bare FastAPI  median {bare:7.0f} rps  ({_fmt(rps['bare'])})")
    print(f"project app   median {project:7.0f} rps  ({_fmt(rps['project'])})")
    print(f"median of per-round ratios: {paired:.2f} (cross-check; the verdict uses medians)")
    cpu_ratio = None
    if us["bare"] and us["project"]:
        bare_us, project_us = statistics.median(us["bare"]), statistics.median(us["project"])
        cpu_ratio = bare_us / project_us
        print(
            f"server cpu per request: bare {bare_us:.0f} us, project {project_us:.0f} us, "
            f"bare/project {cpu_ratio:.2f} (cross-check, less sensitive to noise)"
        )
    print(f"project access-log lines written: {access_lines}")
    if max(client_cpu) > 0.9:
        print("warning: the load generator used over 90% of a core; it may be the bottleneck")
    if cpu_ratio is not None and (cpu_ratio >= TARGET_RATIO) != (ratio >= TARGET_RATIO):
        print(
            f"note: the cpu cross-check ({cpu_ratio:.2f}) and the rps ratio disagree about the "
            "target; other processes probably took the CPU. Rerun on a quieter machine."
        )
    met = report(
        "api_overhead",
        "GET /health rps, full app vs bare FastAPI",
        ours=project,
        baseline=bare,
        unit="req/s",
        target=Target(">=", TARGET_RATIO),
        note=f"CPU/request cross-check {cpu_ratio:.2f}" if cpu_ratio is not None else "",
    )
    return exit_code(met)


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], Path(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "load":
        load_loop()
    else:
        sys.exit(main(sys.argv[1:]))
