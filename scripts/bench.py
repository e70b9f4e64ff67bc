#!/usr/bin/python3
"""scripts/bench.py: the benchmark driver behind scripts/bench (run that).

Measures sandkasten's servers against their peers on loopback, in one run:

- HTTP: sandkasten-http, nginx, Python's http.server, static-web-server;
  a 1 KiB, a 100 KiB and a 10 MiB file and a directory listing, with
  64 keep-alive connections and with a new connection per request (wrk).
- Gopher: sandkasten-gopher against gophernicus, started inetd-style
  (one process per connection, as its socket unit does): a menu and a
  100 KiB file, 64 concurrent clients.
- Echo: TCP bytes/s for 1 and 64 streams, UDP datagrams/s, against socat
  relaying each connection into a pipe and back.
- Cost: idle RSS after start and after the load, and the time to the first
  byte when systemd-socket-activate has to start the server (cold) against
  the same server already running (warm).
- The sandbox's own cost: sandkasten-http in its reference unit against the
  same binary bare, requests/s and cold start, in a Debian guest under qemu
  (`sandkasten-vm bench`; the ratio is what counts under TCG).

These machines are noisy, so every contender is measured in turn (A B C A B C
...), each scenario is repeated, and what counts is the median and the
ratio to the peer, taken per round (ours / peer in the same round) and then
the median of those.

Standard library only, plus matplotlib for the chart. The load for HTTP is
wrk's; for gopher, echo and UDP it is sandkasten-load's (tests/load, built
with the servers), each run as its own process.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
LOAD = os.path.join(BIN, "sandkasten-load")  # the gopher and echo load client
RESULTS = os.path.join(ROOT, "scripts", "bench-results")
HOST = "127.0.0.1"  # loopback only, always

KiB = 1024
MiB = 1024 * KiB

# What each peer is, for the table's ratio column.
PEER = {"http": "nginx", "gopher": "gophernicus", "echo": "socat", "lockdown": "sandkasten-http"}


def log(msg):
    print(f"==> {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def free_ports():
    """A port free for TCP and UDP both."""
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind((HOST, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def descendants(pid):
    """pid and every process below it."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def memory(pid):
    """RSS, PSS and anonymous RSS in KiB, summed over the process tree.

    RSS counts every mapped page, also the shared, clean pages of the binary
    and of libc that the page cache holds anyway; PSS splits shared pages
    among the processes that map them; the anonymous part is the process's
    own memory (heap, stacks)."""
    out = {"rss": 0, "pss": 0, "anon": 0}
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    key, _, rest = line.partition(":")
                    if key == "Rss":
                        out["rss"] += int(rest.split()[0])
                    elif key == "Pss":
                        out["pss"] += int(rest.split()[0])
                    elif key == "Anonymous":
                        out["anon"] += int(rest.split()[0])
        except OSError:
            pass
    return out


class Server:
    """One contender's process (group), started on demand, stopped for good
    on exit."""

    def __init__(self, name, cmd, port, env=None, udp=False):
        self.name, self.cmd, self.port, self.env, self.udp = name, cmd, port, env, udp
        self.proc = None
        self.log = None

    def start(self, logdir):
        self.log = open(os.path.join(logdir, f"{self.name}.log"), "w")
        env = dict(os.environ, **(self.env or {}))
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see its log "
                                   f"{self.log.name}")
            if self.listening():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen on port {self.port} within 10 s")

    def listening(self):
        """Whether the port is bound, read from /proc so that no probe
        connection counts as load (or starts an inetd-style server)."""
        hexport = f":{self.port:04X}"
        tables = ["/proc/net/udp"] if self.udp else ["/proc/net/tcp"]
        for table in tables:
            with open(table) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if fields[1].endswith(hexport) and (self.udp or fields[3] == "0A"):
                        return True
        return False

    def memory(self):
        return memory(self.proc.pid)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.log:
            self.log.close()


# --------------------------------------------------------------------------
# Content
# --------------------------------------------------------------------------


def make_content(base):
    """The same files for every contender: world-readable, since nginx's
    workers and gophernicus run as unprivileged users."""
    www = os.path.join(base, "www")
    os.makedirs(os.path.join(www, "dir"))
    for name, size in (("1k.bin", KiB), ("100k.bin", 100 * KiB), ("10m.bin", 10 * MiB)):
        with open(os.path.join(www, name), "wb") as f:
            f.write(os.urandom(size))
    for i in range(100):
        with open(os.path.join(www, "dir", f"file-{i:03}.txt"), "w") as f:
            f.write(f"file {i}\n" * 10)
    hole = os.path.join(base, "gopher")
    os.makedirs(os.path.join(hole, "menu"))
    with open(os.path.join(hole, "100k.bin"), "wb") as f:
        f.write(os.urandom(100 * KiB))
    for i in range(20):
        with open(os.path.join(hole, "menu", f"note-{i:02}.txt"), "w") as f:
            f.write(f"note {i}\n" * 20)
    for d, _, files in os.walk(base):
        os.chmod(d, 0o755)
        for name in files:
            os.chmod(os.path.join(d, name), 0o644)
    return www, hole


NGINX_CONF = """\
# Tuned fairly: a worker per core, no access log, sendfile.
worker_processes {workers};
daemon off;
master_process on;
pid {base}/nginx.pid;
error_log stderr error;
events {{ worker_connections 4096; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {base}/nginx-tmp/body;
    proxy_temp_path {base}/nginx-tmp/proxy;
    fastcgi_temp_path {base}/nginx-tmp/fastcgi;
    uwsgi_temp_path {base}/nginx-tmp/uwsgi;
    scgi_temp_path {base}/nginx-tmp/scgi;
    server {{
        listen {host}:{port};
        root {www};
        autoindex on;
    }}
}}
"""


# --------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------

WRK_LUA = """\
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def wrk(url, duration, close, lua):
    # wrk takes whole seconds only.
    cmd = ["wrk", "-t2", "-c64", f"-d{max(1, round(duration))}s", "--timeout", "5s", "-s", lua, url]
    if close:
        cmd[1:1] = ["-H", "Connection: close"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30)
    line = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if not line:
        raise RuntimeError(f"wrk printed no summary: {out.stdout}{out.stderr}")
    r = json.loads(line[-1])
    seconds = r["duration_us"] / 1e6
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    return {"rate": r["requests"] / seconds, "p99_ms": r["p99_us"] / 1000, "errors": errors,
            "bytes_per_s": r["bytes"] / seconds, "requests": r["requests"]}


def client(kind, port, duration, **kw):
    """sandkasten-load KIND (gopher, echo-tcp, echo-udp) for `duration`
    seconds; what it printed, as a dict."""
    cmd = [LOAD, kind, "--port", str(port), "--duration", str(duration)]
    for k, v in kw.items():
        if v is not None:
            cmd += [f"--{k}", str(v)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30)
    if out.returncode != 0:
        raise RuntimeError(f"load client failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def http_get(port, path):
    """One HTTP/1.1 GET over a raw socket: (status, body length)."""
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, len(body)  # chunked listings: the framing counts too, fine for a sanity check


def gopher_get(port, selector):
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(selector.encode() + b"\r\n")
        data = b""
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    return data


def ttfb(port, request):
    """Seconds from connect() to the first byte of the answer."""
    t0 = time.perf_counter()
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(request)
        s.recv(1)
        return time.perf_counter() - t0


def median(xs):
    return statistics.median(xs) if xs else None


def machine_info():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "memory_mib": mem, "os": distro()}


def distro():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "unknown"


def others_busy():
    """What else eats CPU: qemu-system processes and the load average."""
    qemu = subprocess.run(["pgrep", "-c", "qemu-system"], capture_output=True, text=True).stdout.strip()
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    return {"qemu_processes": int(qemu or 0), "loadavg_1m": float(load)}


def version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.duration = 1.0 if args.quick else args.duration
        self.reps = 1 if args.quick else args.reps
        self.base = tempfile.mkdtemp(prefix="sandkasten-bench-")
        os.chmod(self.base, 0o755)
        self.logdir = os.path.join(self.base, "logs")
        os.makedirs(self.logdir)
        self.www, self.hole = make_content(self.base)
        self.lua = os.path.join(self.base, "report.lua")
        with open(self.lua, "w") as f:
            f.write(WRK_LUA)
        self.servers = []
        self.results = {"scenarios": [], "memory": {}, "cold_start": {}, "busy": []}

    def cleanup(self):
        for s in self.servers:
            s.stop()
        if not self.args.keep:
            shutil.rmtree(self.base, ignore_errors=True)

    def spawn(self, server):
        server.start(self.logdir)
        self.servers.append(server)
        return server

    def note_busy(self, where):
        busy = others_busy()
        busy["at"] = where
        self.results["busy"].append(busy)

    # ---- HTTP ----------------------------------------------------------

    def http_contenders(self):
        www = self.www
        out = []
        port = free_port()
        out.append(Server("sandkasten-http", [f"{BIN}/sandkasten-http", "--root", www,
                                              "--listen", f"{HOST}:{port}"], port))
        port = free_port()
        conf = os.path.join(self.base, "nginx.conf")
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(self.base, "nginx-tmp", d), exist_ok=True)
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(workers=os.cpu_count(), base=self.base, host=HOST, port=port, www=www))
        out.append(Server("nginx", ["nginx", "-c", conf, "-e", "stderr"], port))
        port = free_port()
        out.append(Server("python-http.server", ["/usr/bin/python3", "-m", "http.server", "--bind", HOST,
                                                 "--directory", www, str(port)], port))
        sws = self.args.sws
        if sws and os.access(sws, os.X_OK):
            port = free_port()
            out.append(Server("static-web-server", [sws, "--host", HOST, "--port", str(port), "--root", www,
                                                    "--directory-listing", "true", "--log-level", "error"],
                              port))
        else:
            log("static-web-server is not installed: left out of this run"
                + (" (--quick does not build it)" if self.quick else ""))
        return out

    def alternate(self, group, name, unit, contenders, measure, scale=1.0):
        """One scenario: `measure(server)` for every contender in turn, round
        by round (A B C A B C …), then the medians and ratios."""
        self.note_busy(name)
        samples = {s.name: [] for s in contenders}
        for rep in range(self.reps):
            for s in contenders:
                log(f"{name}: {s.name} (round {rep + 1}/{self.reps})")
                samples[s.name].append(measure(s))
        self.add(group, name, unit, samples, scale=scale)

    def wrk_rounds(self, group, prefix, contenders, targets):
        """wrk against every contender for each target, kept alive and with a
        new connection per request, contenders alternated round by round."""
        for close in (False, True):
            for label, path in targets:
                name = f"{prefix} {label}, {'new conn' if close else 'keep-alive'}"
                self.alternate(group, name, "req/s", contenders,
                               lambda s: wrk(f"http://{HOST}:{s.port}{path}", self.duration, close, self.lua))

    def check_http(self, server):
        for path, size in (("/1k.bin", KiB), ("/100k.bin", 100 * KiB), ("/10m.bin", 10 * MiB)):
            status, length = http_get(server.port, path)
            if status != 200 or length != size:
                raise RuntimeError(f"{server.name} {path}: status {status}, {length} bytes (want {size})")
        status, length = http_get(server.port, "/dir/")
        if status != 200 or length < 1000:
            raise RuntimeError(f"{server.name} /dir/: status {status}, {length} bytes")

    def run_http(self):
        contenders = [self.spawn(s) for s in self.http_contenders()]
        time.sleep(0.5)
        for s in contenders:
            self.results["memory"].setdefault(s.name, {})["idle_after_start"] = s.memory()
        for s in contenders:
            self.check_http(s)
        targets = [("1 KiB", "/1k.bin"), ("100 KiB", "/100k.bin"), ("10 MiB", "/10m.bin"),
                   ("listing", "/dir/")]
        self.wrk_rounds("http", "HTTP", contenders, targets)
        time.sleep(2)
        for s in contenders:
            self.results["memory"][s.name]["idle_after_load"] = s.memory()
            s.stop()

    # ---- The servers' own share of the sandbox ----------------------------

    def run_lockdown(self):
        """sandkasten-http with and without its lockdown (SANDKASTEN_LOCKDOWN=1:
        Landlock on every open, one more seccomp filter on every call), the
        part of the sandbox that runs inside the server and so can cost."""
        contenders = []
        for name, env in (("sandkasten-http", None), ("sandkasten-http + lockdown", {"SANDKASTEN_LOCKDOWN": "1"})):
            port = free_port()
            contenders.append(self.spawn(Server(name, [f"{BIN}/sandkasten-http", "--root", self.www,
                                                       "--listen", f"{HOST}:{port}"], port, env=env)))
        time.sleep(0.5)
        for s in contenders:
            self.check_http(s)
        self.wrk_rounds("lockdown", "lockdown: HTTP", contenders, [("1 KiB", "/1k.bin"), ("10 MiB", "/10m.bin")])
        for s in contenders:
            s.stop()

    # ---- Gopher --------------------------------------------------------

    def run_gopher(self):
        port = free_port()
        ours = self.spawn(Server("sandkasten-gopher", [f"{BIN}/sandkasten-gopher", "--root", self.hole,
                                                       "--listen", f"{HOST}:{port}"], port))
        port = free_port()
        # As Debian's gophernicus.socket/gophernicus@.service run it:
        # Accept=yes, StandardInput=socket, User=_gophernicus. One change:
        # its per-address throttling (-i hits, -k KiB per session) is lifted;
        # as shipped it slows one address to ~30 requests/s after a few
        # thousand, which a benchmark from 127.0.0.1 reaches in seconds.
        cmd = ["systemd-socket-activate", "--accept", "--inetd", "-l", f"{HOST}:{port}",
               "/usr/sbin/gophernicus", "-h", HOST, "-p", str(port), "-r", self.hole,
               "-i", "1000000000", "-k", "1000000000"]
        shm_before = gophernicus_shm()
        user = gophernicus_user()
        if user:
            cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] + cmd
        peer = self.spawn(Server("gophernicus", cmd, port))
        contenders = [ours, peer]
        time.sleep(0.5)
        self.results["memory"].setdefault(ours.name, {})["idle_after_start"] = ours.memory()
        for s in contenders:
            menu = gopher_get(s.port, "/menu")
            if menu.count(b"note-") < 20:
                raise RuntimeError(f"{s.name}: unexpected menu {menu[:300]!r}")
            if len(gopher_get(s.port, "/100k.bin")) != 100 * KiB:
                raise RuntimeError(f"{s.name}: /100k.bin is not 100 KiB")
        for label, selector, expect in (("menu", "/menu", None), ("100 KiB file", "/100k.bin", 100 * KiB)):
            self.alternate("gopher", f"Gopher {label}", "req/s", contenders,
                           lambda s: client("gopher", s.port, self.duration, concurrency=64, selector=selector,
                                            expect=expect))
        time.sleep(2)
        self.results["memory"][ours.name]["idle_after_load"] = ours.memory()
        for s in contenders:
            s.stop()
        if not shm_before and gophernicus_shm():
            # Its session table outlives it; remove the one we made.
            subprocess.run(["ipcrm", "-M", GOPHERNICUS_SHM_KEY], check=False)

    # ---- Echo ----------------------------------------------------------

    def run_echo(self):
        port = free_ports()
        ours = self.spawn(Server("sandkasten-echo", [f"{BIN}/sandkasten-echo", "--listen", f"{HOST}:{port}",
                                                     "--listen", f"udp:{HOST}:{port}"], port))
        port = free_ports()
        peer = self.spawn(Server("socat", ["socat", f"TCP-LISTEN:{port},bind={HOST},reuseaddr,fork,backlog=128",
                                           "PIPE"], port))
        time.sleep(0.5)
        for s in (ours, peer):
            self.results["memory"].setdefault(s.name, {})["idle_after_start"] = s.memory()
        for label, streams in (("1 stream", 1), ("64 streams", 64)):
            self.alternate("echo", f"Echo TCP, {label}", "MiB/s", (ours, peer),
                           lambda s: client("echo-tcp", s.port, self.duration, streams=streams), scale=1 / MiB)
        name = "Echo UDP, 512 B datagrams"
        self.note_busy(name)
        samples = {ours.name: [], peer.name: []}
        for rep in range(self.reps):
            log(f"{name}: {ours.name} (round {rep + 1}/{self.reps})")
            samples[ours.name].append(client("echo-udp", ours.port, self.duration))
            # UDP-LISTEN serves the first peer only (it connects to it), so
            # each round gets a fresh socat for its fresh client socket.
            port = free_ports()
            peer_udp = self.spawn(Server("socat-udp", ["socat", f"UDP-LISTEN:{port},bind={HOST}", "PIPE"],
                                         port, udp=True))
            log(f"{name}: socat (round {rep + 1}/{self.reps})")
            samples[peer.name].append(client("echo-udp", port, self.duration))
            peer_udp.stop()
        self.add("echo", name, "datagrams/s", samples)
        time.sleep(2)
        for s in (ours, peer):
            self.results["memory"][s.name]["idle_after_load"] = s.memory()
        for s in (ours, peer):
            s.stop()

    # ---- Cold start ----------------------------------------------------

    def run_cold(self):
        rounds = 3 if self.quick else 10
        cases = [
            ("sandkasten-http", "http", [f"{BIN}/sandkasten-http", "--root", self.www],
             f"GET /1k.bin HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()),
            ("sandkasten-gopher", "gopher", [f"{BIN}/sandkasten-gopher", "--root", self.hole], b"/menu\r\n"),
            ("sandkasten-echo", "echo", [f"{BIN}/sandkasten-echo"], b"x"),
        ]
        self.note_busy("cold start")
        for name, fdname, cmd, request in cases:
            cold, warm = [], []
            for _ in range(rounds):
                port = free_port()
                s = Server(f"{name}-activated", ["systemd-socket-activate", "-l", f"{HOST}:{port}",
                                                 f"--fdname={fdname}"] + cmd, port)
                s.start(self.logdir)
                try:
                    cold.append(ttfb(port, request))
                    time.sleep(0.05)
                    warm.append(median([ttfb(port, request) for _ in range(5)]))
                finally:
                    s.stop()
            self.results["cold_start"][name] = {"cold_ms": [c * 1000 for c in cold],
                                                "warm_ms": [w * 1000 for w in warm]}
            log(f"cold start {name}: {median(cold) * 1000:.2f} ms cold, {median(warm) * 1000:.3f} ms warm")

    # ---- The sandbox's own cost (in a guest) ---------------------------

    def run_sandbox(self):
        """`sandkasten-vm bench`: the same sandkasten-http in its reference
        unit (sandboxed) and bare under systemd-socket-activate, in a Debian
        guest under qemu, since this machine's PID 1 is not systemd. TCG makes
        every figure slow, so the guest side keeps its own rounds and loads
        (shorter with --quick) and what counts is the ratio, per round."""
        vm = os.path.join(BIN, "sandkasten-vm")
        if not os.access(vm, os.X_OK):
            raise RuntimeError(f"{os.path.relpath(vm, ROOT)} is missing: run scripts/bench, or cargo build "
                               "--release -p sandkasten-vm")
        out = os.path.join(self.base, "sandbox.json")
        cmd = [vm, "bench", "--json", out]
        if self.quick:
            cmd += ["--rounds", "2", "--duration", "1"]
        self.note_busy("sandbox")
        log(f"the sandbox's own cost: {' '.join(cmd[1:])} (boots a guest, about 2 min under TCG)")
        # Its table and progress are progress here: the table comes at the end.
        rc = subprocess.run(cmd, stdout=sys.stderr).returncode
        if not os.path.exists(out):
            raise RuntimeError(f"sandkasten-vm bench failed (exit {rc}) and wrote no report")
        with open(out) as f:
            self.results["sandbox"] = json.load(f)
        if rc != 0:
            # A contender failed or answered wrong: its errors show in the table.
            log(f"sandkasten-vm bench: exit {rc}, a contender failed or answered wrong (see above)")

    # ---- Bookkeeping ---------------------------------------------------

    def add(self, group, name, unit, samples, scale=1.0):
        peer = PEER[group]
        contenders = list(samples)
        row = {"group": group, "name": name, "unit": unit, "peer": peer, "contenders": {}}
        for c in contenders:
            rates = [x["rate"] * scale for x in samples[c]]
            entry = {"samples": samples[c], "median": median(rates)}
            if "p99_ms" in samples[c][0]:
                entry["p99_ms"] = median([x["p99_ms"] for x in samples[c]])
            entry["errors"] = sum(x.get("errors", 0) for x in samples[c])
            if c != peer and peer in samples:
                # Per round: this contender against the peer measured right
                # next to it; then the median of those ratios.
                entry["ratio"] = median([a["rate"] / b["rate"] for a, b in zip(samples[c], samples[peer])
                                         if b["rate"] > 0])
            row["contenders"][c] = entry
        self.results["scenarios"].append(row)
        best = ", ".join(f"{c} {e['median']:.0f}" for c, e in row["contenders"].items())
        log(f"{name}: {best}")


# gophernicus keeps its sessions in System V shared memory under this key.
GOPHERNICUS_SHM_KEY = "0xbeeb0008"


def gophernicus_shm():
    out = subprocess.run(["ipcs", "-m"], capture_output=True, text=True).stdout
    return GOPHERNICUS_SHM_KEY in out


def gophernicus_user():
    try:
        import pwd
        pwd.getpwnam("_gophernicus")
        return "_gophernicus"
    except KeyError:
        return None


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

GOALS = {
    "http": ("sandkasten-http / nginx ≥ 1.0 on every row", 1.0),
    "gopher": ("sandkasten-gopher ≥ 5× gophernicus", 5.0),
    "echo": ("sandkasten-echo ≥ 0.8× socat", 0.8),
}


def fmt_rate(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}"


def table(results):
    """The results as Markdown tables (stdout and README)."""
    lines = []
    for group, title in (("http", "HTTP (wrk, 64 connections; requests/s, p99 latency, errors)"),
                         ("gopher", "Gopher (64 concurrent clients; requests/s)"),
                         ("echo", "Echo"),
                         ("lockdown", "The servers' lockdown (SANDKASTEN_LOCKDOWN=1: Landlock + one more "
                                      "seccomp filter; wrk, 64 connections)")):
        rows = [r for r in results["scenarios"] if r["group"] == group]
        if not rows:
            continue
        names = []
        for r in rows:
            for c in r["contenders"]:
                if c not in names:
                    names.append(c)
        peer = PEER[group]
        lines.append(f"**{title}**, ratio = ours / {peer}, median of per-round ratios")
        lines.append("")
        header = ["scenario"] + names + [f"ratio to {peer}"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for r in rows:
            cells = [f"{r['name']} ({r['unit']})"]
            for c in names:
                e = r["contenders"].get(c)
                if not e:
                    cells.append("-")
                    continue
                cell = fmt_rate(e["median"])
                if "p99_ms" in e:
                    cell += f" · p99 {e['p99_ms']:.1f} ms"
                if e["errors"]:
                    cell += f" · {e['errors']:,} err"
                cells.append(cell)
            ours = next(c for c in names if c.startswith("sandkasten") and c != peer)
            ratio = r["contenders"][ours].get("ratio")
            cells.append(f"**{ratio:.2f}**" if ratio is not None else "-")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    mem = results["memory"]
    if mem:
        lines.append("**Cost**: idle memory, RSS / PSS / anonymous, KiB, summed over the process tree "
                     "(nginx: master and workers)")
        lines.append("")
        lines.append("| server | idle after start | idle after load |")
        lines.append("|---|---|---|")
        for name, m in mem.items():
            cells = []
            for key in ("idle_after_start", "idle_after_load"):
                v = m.get(key)
                cells.append(f"{v['rss']:,} / {v['pss']:,} / {v['anon']:,}" if v else "-")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    sandbox = results.get("sandbox")
    if sandbox:
        lines.extend(sandbox_table(sandbox))
    cold = results["cold_start"]
    if cold:
        lines.append("**Cold start**: connect to first byte, median ms (systemd-socket-activate starts the "
                     "server on the first connection; warm: the same server already running)")
        lines.append("")
        lines.append("| server | cold | warm |")
        lines.append("|---|---|---|")
        for name, c in cold.items():
            lines.append(f"| {name} | {median(c['cold_ms']):.2f} | {median(c['warm_ms']):.3f} |")
        lines.append("")
    return "\n".join(lines)


def sandbox_table(reports):
    """The sandbox part's section: `sandkasten-vm bench`'s figures (its
    `rows`, one report per release), as lines of Markdown."""
    lines = ["**The sandbox's own cost** (Debian guest under qemu/TCG; the same binary in its reference unit "
             "and bare under systemd-socket-activate), median (min–max) of the rounds, "
             "ratio = sandboxed / bare, median of per-round ratios", "",
             "| scenario | bare | sandboxed | ratio |", "|---|---|---|---|"]

    def cell(stat, unit):
        if unit == "ms":
            text = f"{stat['median']:.1f} ({stat['min']:.1f}–{stat['max']:.1f})"
        else:
            text = f"{fmt_rate(stat['median'])} ({fmt_rate(stat['min'])}–{fmt_rate(stat['max'])})"
        if stat.get("p99_ms") is not None:
            text += f" · p99 {stat['p99_ms']:.1f} ms"
        if stat.get("errors"):
            text += f" · {stat['errors']:,} err"
        return text

    for report in reports:
        where = f", {report['release']}" if len(reports) > 1 else ""
        for row in report["rows"]:
            ratio = f"**{row['ratio']:.2f}**" if row.get("ratio") is not None else "-"
            lines.append(f"| {row['name']}{where} ({row['unit']}) | {cell(row['bare'], row['unit'])} | "
                         f"{cell(row['sandboxed'], row['unit'])} | {ratio} |")
    lines.append("")
    for report in reports:
        errors = f"; ERRORS: {'; '.join(report['errors'])}" if report["errors"] else ""
        lines.append(f"{report['release']}: systemd {report['systemd']}, kernel {report['kernel']}, "
                     f"{report['accel']}; {report['rounds']} round(s) of {report['duration_s']:g} s per "
                     f"contender and scenario, {report['concurrency']} connections "
                     f"(sandkasten-load's HTTP client, in the guest){errors}.")
    lines.append("")
    return lines


def goals(results):
    out = []
    by_name = {r["name"]: r for r in results["scenarios"]}

    def ratio(name, ours, against=None):
        r = by_name.get(name)
        if not r:
            return None
        if against is None:
            return r["contenders"][ours].get("ratio")
        a, b = r["contenders"].get(ours), r["contenders"].get(against)
        if not a or not b or not b["median"]:
            return None
        return a["median"] / b["median"]

    def verdict(label, values, goal):
        values = [v for v in values if v is not None]
        if not values:
            return
        ok = all(v >= goal for v in values)
        shown = ", ".join(f"{v:.2f}" for v in values)
        out.append(f"- {'met' if ok else 'MISSED'}: {label} (ratios {shown})")

    http_rows = [r for r in results["scenarios"] if r["group"] == "http"]
    verdict("sandkasten-http ≥ 1.0× nginx on every row",
            [r["contenders"]["sandkasten-http"].get("ratio") for r in http_rows], 1.0)
    p99 = [r["contenders"]["sandkasten-http"]["p99_ms"] / r["contenders"]["nginx"]["p99_ms"]
           for r in http_rows if "new conn" in r["name"] and "nginx" in r["contenders"]
           and r["contenders"]["nginx"].get("p99_ms")]
    if p99:
        ok = all(x <= 2.0 for x in p99)
        out.append(f"- {'met' if ok else 'MISSED'}: sandkasten-http's p99 on new connections within 2× nginx's "
                   f"(ours / nginx: {', '.join(f'{x:.2f}' for x in p99)})")
    verdict("sandkasten-http far ahead of Python's http.server (≥ 5× on small files and listings)",
            [ratio(r["name"], "sandkasten-http", "python-http.server") for r in results["scenarios"]
             if r["group"] == "http" and "10 MiB" not in r["name"]], 5.0)
    verdict("sandkasten-gopher ≥ 5× gophernicus",
            [r["contenders"]["sandkasten-gopher"].get("ratio") for r in results["scenarios"]
             if r["group"] == "gopher"], 5.0)
    verdict("sandkasten-echo ≥ 0.8× socat",
            [r["contenders"]["sandkasten-echo"].get("ratio") for r in results["scenarios"]
             if r["group"] == "echo"], 0.8)
    nginx = results["memory"].get("nginx", {}).get("idle_after_load")
    for name, m in results["memory"].items():
        after = m.get("idle_after_load")
        if not name.startswith("sandkasten") or not after or not nginx:
            continue
        status = "met" if after["rss"] < nginx["rss"] else "MISSED"
        out.append(f"- {status}: {name} idle RSS after load below nginx's: {after['rss']:,} KiB against "
                   f"{nginx['rss']:,} (PSS {after['pss']:,}, anonymous {after['anon']:,})")
    return "\n".join(out)


def chart(results, path, title):
    """Draws the peer comparisons; False when the run has none to draw (a
    run of only the lockdown part, say)."""
    groups = [g for g in ("http", "gopher", "echo") if any(r["group"] == g for r in results["scenarios"])]
    if not groups:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(groups), 1, figsize=(11, 3.2 * len(groups) + 0.8),
                             gridspec_kw={"height_ratios": [3 if g == "http" else 1.3 for g in groups]})
    if len(groups) == 1:
        axes = [axes]
    colors = {"sandkasten-http": "#1f77b4", "sandkasten-gopher": "#1f77b4", "sandkasten-echo": "#1f77b4",
              "nginx": "#2ca02c", "gophernicus": "#2ca02c", "socat": "#2ca02c",
              "python-http.server": "#d62728", "static-web-server": "#ff7f0e"}
    for ax, group in zip(axes, groups):
        rows = [r for r in results["scenarios"] if r["group"] == group]
        peer = PEER[group]
        names = []
        for r in rows:
            for c in r["contenders"]:
                if c not in names:
                    names.append(c)
        height = 0.8 / len(names)
        for i, c in enumerate(names):
            ys, xs = [], []
            for j, r in enumerate(rows):
                e = r["contenders"].get(c)
                ratio = 1.0 if c == peer else e and e.get("ratio")
                if not ratio:
                    continue
                ys.append(j + (i - (len(names) - 1) / 2) * height)
                xs.append(ratio)
            ax.barh(ys, xs, height=height, label=c, color=colors.get(c))
            for y, x in zip(ys, xs):
                ax.text(x, y, f" {x:.2f}", va="center", fontsize=7)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([r["name"] for r in rows], fontsize=8)
        ax.invert_yaxis()
        ax.axvline(1.0, color="gray", lw=0.8, ls="--")
        if group == "http":
            ax.set_xscale("log")
        goal = GOALS[group][1]
        ax.axvline(goal, color="black", lw=0.8, ls=":")
        ax.set_xlabel(f"throughput relative to {peer} (= 1.0), median of per-round ratios; "
                      f"dotted: goal {goal:g}", fontsize=8)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def update_readme(md):
    path = os.path.join(RESULTS, "README.md")
    with open(path) as f:
        text = f.read()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start not in text or end not in text:
        log("scripts/bench-results/README.md has no bench markers: not updated")
        return
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    with open(path, "w") as f:
        f.write(head + start + "\n" + md.strip() + "\n" + end + tail)
    log("scripts/bench-results/README.md: the tables updated")


ALL_PARTS = ("http", "gopher", "echo", "cold", "lockdown", "sandbox")


def main():
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: one round of 1 s loads (< 3 min)")
    p.add_argument("--reps", type=int, default=3, help="rounds per scenario (default 3)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per load (default 5)")
    p.add_argument("--only", default=",".join(ALL_PARTS),
                   help="comma-separated parts to run (sandbox: the sandbox's own cost, in a qemu guest)")
    p.add_argument("--sws", help="static-web-server binary")
    p.add_argument("--readme", action="store_true", help="write the tables into scripts/bench-results/README.md")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory (content, logs)")
    args = p.parse_args()
    if args.reps < 1 or args.duration <= 0:
        p.error("--reps and --duration must be positive")
    parts = args.only.split(",")
    unknown = set(parts) - set(ALL_PARTS)
    if unknown:
        p.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}")
    if {"gopher", "echo"} & set(parts) and not os.access(LOAD, os.X_OK):
        p.error(f"{os.path.relpath(LOAD, ROOT)} is missing: run scripts/bench, or cargo build --release "
                "-p sandkasten-load")

    now = datetime.datetime.now(datetime.timezone.utc)
    machine = machine_info()
    versions = {
        "sandkasten": version([f"{BIN}/sandkasten-http", "--version"]),
        "nginx": version(["nginx", "-v"]),
        "python": platform.python_version(),
        "gophernicus": version(["/usr/sbin/gophernicus", "-v"]),
        "socat": version(["sh", "-c", "socat -V | grep 'socat version'"]),
        "wrk": version(["wrk", "-v"]),
        "static-web-server": version([args.sws, "--version"]) if args.sws and os.path.exists(args.sws) else None,
    }
    print(f"machine: {machine['nproc']} CPUs, {machine['cpu']}, kernel {machine['kernel']}, "
          f"{machine['memory_mib']} MiB, {machine['os']}")
    print(f"date: {now:%Y-%m-%d %H:%M} UTC; {'quick' if args.quick else 'full'} run")
    busy = others_busy()
    print(f"load before the run: {busy['loadavg_1m']} (1 min), qemu-system processes: {busy['qemu_processes']}")
    sys.stdout.flush()

    bench = Bench(args)
    t0 = time.monotonic()

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        if "http" in parts:
            bench.run_http()
        if "gopher" in parts:
            bench.run_gopher()
        if "echo" in parts:
            bench.run_echo()
        if "cold" in parts:
            bench.run_cold()
        if "lockdown" in parts:
            bench.run_lockdown()
        if "sandbox" in parts:
            bench.run_sandbox()
    finally:
        bench.cleanup()
    results = bench.results
    results.update({"date": now.isoformat(timespec="seconds"), "machine": machine, "versions": versions,
                    "quick": args.quick, "reps": bench.reps, "duration_s": bench.duration,
                    "elapsed_s": round(time.monotonic() - t0, 1)})
    busy_max = max((b["qemu_processes"] for b in results["busy"]), default=0)
    load_max = max((b["loadavg_1m"] for b in results["busy"]), default=0)

    md = table(results)
    summary = goals(results)
    partial = set(parts) != set(ALL_PARTS)
    stamp = f"{now:%Y-%m-%d}" + ("-quick" if args.quick else "") + ("-partial" if partial else "")
    title = (f"sandkasten benchmarks {now:%Y-%m-%d}, {machine['nproc']} × {machine['cpu']}, "
             f"Linux {machine['kernel']}" + (" (quick run)" if args.quick else ""))
    os.makedirs(RESULTS, exist_ok=True)
    json_path = os.path.join(RESULTS, f"bench-{stamp}.json")
    png_path = os.path.join(RESULTS, f"bench-{stamp}.png")
    with open(json_path, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    try:
        if not chart(results, png_path, title):
            png_path = None
    except ImportError:
        log("matplotlib is missing: no chart (apt-get install python3-matplotlib)")
        png_path = None

    header = (f"Measured {now:%Y-%m-%d} on {machine['nproc']} × {machine['cpu']} (KVM guest), "
              f"Linux {machine['kernel']}, {machine['os']}; {bench.reps} round(s) of "
              f"{bench.duration:g} s per contender and scenario, contenders alternated; "
              f"load average up to {load_max:.1f}, qemu-system processes seen: {busy_max}.")
    print()
    print(header)
    print()
    print(md)
    print("Goals:")
    print(summary)
    print()
    print(f"wrote {os.path.relpath(json_path, ROOT)}" + (f" and {os.path.relpath(png_path, ROOT)}" if png_path else ""))
    print(f"took {results['elapsed_s']:.0f} s")
    if args.readme:
        if args.quick or partial:
            log("--readme ignored: only a full run of every part goes into the README")
        else:
            rel = os.path.relpath(png_path, RESULTS) if png_path else None
            block = header + "\n\n" + md + "\n" + (f"![benchmark chart]({rel})\n" if rel else "")
            update_readme(block)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
