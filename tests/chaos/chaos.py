#!/usr/bin/env python3
"""Multi-host chaos test for the redis queue backend (issue 3).

Builds a small "data centre" on this machine: a Linux bridge in the root network
namespace, one network namespace per host (2 ingress hosts, 3 worker hosts) joined
to it by veth pairs, and one redis-server in the root namespace bound to the bridge
address. Senders in the root namespace POST signed `hmac` events round-robin over
the ingress hosts, with duplicates; meanwhile the test kill -9s random ingress and
worker processes, restarts Redis once and cuts one worker host off the network for
30 s. Afterwards it waits for the queue to settle and checks that every ACKed event
was handled (lost = 0), that every job reached exactly one final state and that
duplicates were suppressed.

Usage (root; Python 3 stdlib only):
    chaos.py --bin build/release/firebreak --seconds 300     # make chaos
    chaos.py --bin build/release/firebreak --seconds 60      # ctest -L chaos

Exit: 0 pass, 1 a check failed, 2 setup failed (e.g. this build refuses redis).

Persistence: queue.durability = "fsync" (default) runs Redis with AOF `appendfsync
always` (an ACKed job is fsynced before the 200: survives kill -9 of firebreak or
Redis and a power loss of the Redis host); --durability process runs AOF `appendfsync
everysec` (survives kill -9 of firebreak or Redis; a power loss can lose the last
second). This test kills redis-server, not the machine, so both must show lost = 0.
`--appendfsync no` runs Redis without AOF: the run must then FAIL (lost jobs, lost
dedupe keys, a durability warning), which shows that the checks can see a loss.

Flow control and shared limits (issue 17)
-----------------------------------------
Every chaos.event job is keyed: `key = "/key"`, `concurrency_per_key = 2`; senders put
one of 20 keys in each payload, skewed (k00 7 %, k01 5 %, the rest evenly) so that
keys hit their limit often without the busiest falling behind for good. 40 % of the
events also call the integration "chaos-upstream" through their worker's sidecar
(enough to keep its cap busy); it has `max_concurrency = 6`,
`limits = "shared"`, `shared_lease = "2s"`, `timeout = "2s"` and no retries
(`retry.attempts = 1`). The upstream is a small HTTP server of this test in the root
namespace, on the bridge address; it works 20-40 ms per request and counts the
requests it is working on (a counter under a lock; the count goes up once a request
has been read and down before its answer is written, so each counted interval lies
inside the caller's lease). The handler records the start and end of every run
(handler.py; one O_APPEND write each, wall clock, host, worker pid).

Check 1, per-key concurrency: at no moment do runs of more than 2 distinct jobs of one
key overlap, counting every run except these, which the design allows to overlap
(at-least-once: a job whose worker is gone is delivered again when its lease, the job
timeout + 5 s, runs out):
  - a run whose worker was kill -9'd (or crashed) before the run recorded its end,
    whether or not it recorded one. The kill takes the handler along
    (PR_SET_PDEATHSIG; checked here: "handlers that outlived their worker" must be
    none), but a handler can still write its end in the instant between its worker's
    death (which breaks its sidecar connection) and its own SIGKILL;
  - a run on the partitioned worker host that overlaps its 30 s without network.
A run that never recorded an end although its worker lived (its handler was killed at
the job timeout; a handler process that takes seconds to start on a loaded machine
does that) counts as running until its worker logged "handler process ended during a
job" for that handler process (at the latest start + job timeout). Runs are counted
per distinct job: two runs of one job at once are the at-least-once case above, not a
second job of the key; two such runs that are both counted (healthy workers) fail the
test on their own ("one job ran twice at once"), as that can only be a lease bug.

Check 2, shared cap: at no moment does the upstream work on more than 6 requests,
counting every request except
  - those sent by a worker process while it counted the integration's limits per
    process. The sidecar falls back to per-process limits when a limit-store call fails
    or takes longer than min(queue.timeout, 1 s): warning "shared limits unavailable",
    then, after at least 2 s of fallback, the first successful poll (every 250 ms) logs
    "shared limits restored". That is by design (docs/egress.md, "When the store
    fails"; it cannot be configured away) and happens here during the Redis restart
    (every worker) and to the partitioned worker; meanwhile up to 3 x 6 calls may reach
    the upstream. Left out: a request that arrived from a worker host between that
    process's "unavailable" and its "restored" (or its end) + 2.1 s, as a call started
    during the fallback holds no lease and makes one attempt, which reaches the
    upstream within the integration's 2 s timeout (the partitioned host's connection
    attempts can arrive late, after its link is up again). Requests that arrived
    before a fallback began are still counted;
  - abandoned requests: the caller had closed the connection by the time the upstream
    was done with the request (checked with a peek for EOF/reset just before the
    count goes down). A caller that waits for its answer never closes; one that gave
    up did: curl at the integration timeout (the call then releases its permit) or the
    kernel at a kill -9 (the permit stays taken until the lease runs out). The
    partition shows why this is needed: requests a cut-off worker wrote into a
    keep-alive connection are retransmitted by the kernel when the link comes back,
    seconds after curl gave up on them and closed the socket (a graceful close: the
    unsent data still goes out), so the upstream works on them while their permits
    are someone else's. With `--backend sqlite` the partitioned worker still reaches
    the limit store, keeps counting shared, and this pushed the upstream to 7-8.
Everything else holds a lease, and the checked rule is "the upstream's peak of
requests arriving from live lease holders <= 6". Leases of a killed worker stay taken
for up to 2 s, while its requests at the upstream end within 40 ms, so a kill -9 needs
no allowance beyond the above. A Redis restart forgets the leases (they are not
written to the AOF), but every worker falls back while Redis is down (3 s) and only
counts shared again after Redis is back, when calls that hold old leases are long over.
The report prints the raw peak (every request) next to the checked one.

`--misconfigure-flow` runs with `concurrency_per_key = 4` and `limits = "process"`
while checking 2 and 6: the run must then FAIL both checks, which shows they can see a
broken limit.
"""
import argparse
import atexit
import fcntl
import hashlib
import hmac
import heapq
import http.client
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX = "fbchaos"  # netns "fbchaos-PID-host", temp dirs /tmp/fbchaos-PID-*
LINK_PREFIX = "fbc"  # interfaces "fbcPIDb" (bridge), "fbcPIDvN" (veth, root side)
LOCK_PATH = "/run/lock/fbchaos.lock" if os.path.isdir("/run/lock") else "/tmp/fbchaos.lock"
INGRESS_PORT = 8080
INGRESS_HOSTS = 2
WORKER_HOSTS = 3
EVENT_TYPE = "chaos.event"
DOOMED_TYPE = "chaos.doomed"
DOOMED_MAX_ATTEMPTS = 3
EVENT_MAX_ATTEMPTS = 10
EVENT_CONCURRENCY = 12  # handler processes of chaos.event per worker
JOB_TIMEOUT_S = 5
SECRET = "chaos-test-secret"
# Flow control and shared limits (see the docstring).
KEYS = 20
KEY_LIMIT = 2          # concurrency_per_key of chaos.event
HOT_KEYS = [("k00", 0.07), ("k01", 0.05)]  # the rest share the remaining traffic evenly
CALL_RATIO = 0.4       # events that call the integration
INTEGRATION = "chaos-upstream"
SHARED_CAP = 6         # max_concurrency, limits = "shared"
SHARED_LEASE = "2s"
INTEGRATION_TIMEOUT_S = 2
UPSTREAM_WORK_S = (0.020, 0.040)
# A call started during a process's fallback reaches the upstream within the
# integration timeout (one attempt); 0.1 s for the log's millisecond timestamps.
FALLBACK_MARGIN_S = INTEGRATION_TIMEOUT_S + 0.1

EXIT_PASS, EXIT_FAIL, EXIT_SETUP = 0, 1, 2
_T0 = time.monotonic()
_T0_WALL = time.time()


class SetupError(Exception):
    """The topology or a process could not be brought up: exit 2."""


class Interrupted(Exception):
    """SIGTERM arrived: tear down and exit."""


def log(message):
    print(f"[chaos {time.monotonic() - _T0:7.1f}s] {message}", flush=True)


def sh(*argv, check=True):
    result = subprocess.run(argv, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SetupError(f"{' '.join(argv)}: {result.stderr.strip() or result.returncode}")
    return result.stdout


def owner_alive(pid):
    """True if `pid` is a running chaos.py (a parallel run that still owns its resources)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"chaos.py" in f.read()
    except OSError:
        return False


def clean_stale():
    """Removes what crashed earlier runs left behind, only if nothing uses it any more."""
    for line in sh("ip", "netns", "list", check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(rf"^{PREFIX}-(\d+)-", name)
        if not m or owner_alive(int(m.group(1))):
            continue
        if sh("ip", "netns", "pids", name, check=False).strip():
            log(f"stale netns {name} still has processes; leaving it alone")
            continue
        sh("ip", "netns", "del", name, check=False)
        log(f"removed stale netns {name}")
    for line in sh("ip", "-o", "link", "show", check=False).splitlines():
        m = re.match(rf"^\d+: ({LINK_PREFIX}(\d+)[bv]\d*)[@:]", line)
        if m and not owner_alive(int(m.group(2))):
            sh("ip", "link", "del", m.group(1), check=False)
            log(f"removed stale link {m.group(1)}")
    for entry in os.listdir(tempfile.gettempdir()):
        m = re.match(rf"^{PREFIX}-(\d+)-", entry)
        if m and not owner_alive(int(m.group(1))):
            shutil.rmtree(os.path.join(tempfile.gettempdir(), entry), ignore_errors=True)


def pick_subnet():
    """First 10.77.X.0/24 no interface on this machine uses (called under LOCK_PATH)."""
    used = set(re.findall(r"inet 10\.77\.(\d+)\.", sh("ip", "-4", "-o", "addr", "show")))
    for third in range(0, 255):
        if str(third) not in used:
            return f"10.77.{third}"
    raise SetupError("no free 10.77.X.0/24 subnet")


class Host:
    def __init__(self, index, role, role_index, pid, subnet):
        self.index = index
        self.role = role  # "ingest" | "worker"
        self.name = f"{role}{role_index}"
        self.netns = f"{PREFIX}-{pid}-{self.name}"
        self.veth = f"{LINK_PREFIX}{pid}v{index}"
        self.peer = f"{LINK_PREFIX}{pid}p{index}"
        self.address = f"{subnet}.{10 + index}"


class Topology:
    """Bridge + one netns per host, each with a veth into the bridge."""

    def __init__(self, subnet):
        pid = os.getpid()
        self.subnet = subnet
        self.gateway = f"{subnet}.1"
        self.bridge = f"{LINK_PREFIX}{pid}b"
        self.hosts = [Host(i, "ingest", i, pid, subnet) for i in range(INGRESS_HOSTS)]
        self.hosts += [Host(INGRESS_HOSTS + i, "worker", i, pid, subnet)
                       for i in range(WORKER_HOSTS)]
        self.created_netns = []
        self.created_links = []

    def create(self):
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        self.created_links.append(self.bridge)
        sh("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for host in self.hosts:
            sh("ip", "netns", "add", host.netns)
            self.created_netns.append(host.netns)
            sh("ip", "-n", host.netns, "link", "set", "lo", "up")
            sh("ip", "link", "add", host.veth, "type", "veth", "peer", "name", host.peer)
            self.created_links.append(host.veth)
            sh("ip", "link", "set", host.peer, "netns", host.netns)
            sh("ip", "-n", host.netns, "link", "set", host.peer, "name", "eth0")
            sh("ip", "-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            sh("ip", "-n", host.netns, "link", "set", "eth0", "up")
            sh("ip", "link", "set", host.veth, "master", self.bridge)
            sh("ip", "link", "set", host.veth, "up")

    def set_link(self, host, up):
        sh("ip", "link", "set", host.veth, "up" if up else "down")

    def destroy(self):
        for netns in self.created_netns:
            pids = sh("ip", "netns", "pids", netns, check=False).split()
            for pid in pids:  # handler processes our firebreak workers started
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass
            sh("ip", "netns", "del", netns, check=False)
        for link in reversed(self.created_links):
            sh("ip", "link", "del", link, check=False)
        self.created_netns, self.created_links = [], []


def child_argv(argv, netns=None):
    """Children die with this process even if it is SIGKILLed (no orphans, no stale netns users)."""
    wrapped = ["setpriv", "--pdeathsig", "KILL", "--"]
    if netns:
        wrapped += ["ip", "netns", "exec", netns]
    return wrapped + argv


class Redis:
    def __init__(self, bind, workdir, appendfsync):
        self.bind = bind
        self.dir = os.path.join(workdir, "redis")
        os.makedirs(self.dir)
        self.appendfsync = appendfsync
        self.port = free_port(bind)
        self.popen = None

    def start(self):
        persistence = (["--appendonly", "no"] if self.appendfsync == "no" else
                       ["--appendonly", "yes", "--appendfsync", self.appendfsync])
        argv = ["redis-server", "--bind", self.bind, "--port", str(self.port), "--dir", self.dir,
                *persistence, "--save", "",
                "--protected-mode", "no", "--daemonize", "no",
                "--logfile", os.path.join(self.dir, "redis.log")]
        self.popen = subprocess.Popen(child_argv(argv), stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise SetupError(f"redis-server exited with {self.popen.returncode}; "
                                 f"see {self.dir}/redis.log")
            if self.ping():
                return
            time.sleep(0.05)
        raise SetupError("redis-server did not answer PING within 20 s")

    def ping(self):
        try:
            with socket.create_connection((self.bind, self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill9(self):
        if self.popen and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()

    def stop(self):
        if self.popen and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def url(self):
        return f"redis://{self.bind}:{self.port}/0"


def free_port(address):
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def peer_closed(sock):
    """True if the client closed (or reset) the connection: it no longer waits for the
    answer. A caller waiting for its answer never closes; curl closes at its timeout and
    the kernel at a kill -9."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class Upstream:
    """The integration's upstream: an HTTP server on the bridge address (worker hosts reach
    it over their veth; a partitioned host cannot). Each POST is worked on for 20-40 ms.

    `in_flight` counts the requests being worked on: up once the request has been read
    (so its sender holds a lease, or is in fallback), down *before* the answer is
    written (the sender releases its lease only after reading the answer), each under
    one lock with a sequence number, so the checker can replay the exact order. `peak`
    is the highest count seen, whatever the sender's state."""

    def __init__(self, bind):
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.seq = 0
        # (seq at arrival, seq at end, arrival wall time, end, client ip, abandoned)
        self.records = []
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as curl's pool expects

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                arrived_seq, arrived = upstream.enter()
                abandoned = True
                try:
                    time.sleep(random.uniform(*UPSTREAM_WORK_S))
                    abandoned = peer_closed(self.connection)
                finally:
                    upstream.leave(arrived_seq, arrived, self.client_address[0], abandoned)
                body = b'{"ok":true}'
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the caller was killed or cut off meanwhile

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

            def handle_error(self, request, client_address):
                pass  # connection resets from killed callers

        self.server = Server((bind, 0), Handler)
        self.address = bind
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name="upstream")

    def start(self):
        self.thread.start()

    def enter(self):
        with self.lock:
            self.seq += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            return self.seq, time.time()

    def leave(self, arrived_seq, arrived, client, abandoned):
        with self.lock:
            self.seq += 1
            self.in_flight -= 1
            self.records.append((arrived_seq, self.seq, arrived, time.time(), client,
                                 abandoned))

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def url(self):
        return f"http://{self.address}:{self.port}"


class FirebreakProcess:
    """One `firebreak ingest|worker` on one host; restartable, logs one file per incarnation."""

    def __init__(self, binary, host, config, logdir):
        self.binary = binary
        self.host = host
        self.config = config
        self.logdir = logdir
        self.popen = None
        self.incarnation = 0
        self.expected_down = False
        self.unexpected_exits = []
        self.start_failures = 0
        # One entry per incarnation: {"incarnation", "pid", "start", "end", "how"} (wall
        # times; how: None while running, "killed", "stopped", "exited").
        self.history = []

    @property
    def name(self):
        return self.host.name

    def log_path(self):
        return os.path.join(self.logdir, f"{self.name}.{self.incarnation}.log")

    def start(self):
        self.incarnation += 1
        with open(self.log_path(), "wb") as out:
            self.popen = subprocess.Popen(
                child_argv([self.binary, self.host.role, "-c", self.config], self.host.netns),
                # The sidecar's default sqlite store is var/firebreak.db, relative: keep it
                # in the temp dir, not in the caller's working tree.
                cwd=os.path.dirname(self.logdir),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        self.expected_down = False
        self.history.append({"incarnation": self.incarnation, "pid": self.popen.pid,
                             "start": time.time(), "end": None, "how": None})

    def _ended(self, how):
        if self.history and self.history[-1]["end"] is None:
            self.history[-1]["end"] = time.time()
            self.history[-1]["how"] = how

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def kill9(self):
        self.expected_down = True
        if self.alive():
            self._ended("killed")  # before the signal: a run that ends later outlived it
            self.popen.kill()
        if self.popen:
            self.popen.wait()

    def stop(self, timeout):
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code, "killed" or None
        if it was not running."""
        self.expected_down = True
        if not self.alive():
            return None
        self.popen.terminate()
        self._ended("stopped")
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            return "killed"

    def check_exit(self):
        """Notices an exit nobody asked for; True if the process must be started again.

        An exit before "firebreak started" (the queue could not be opened: its host is
        cut off or Redis is down) is what a supervisor such as systemd restarts; it is
        counted, not failed. An exit after a successful start is a crash: failed.
        """
        if self.expected_down or self.popen is None or self.popen.poll() is None:
            return False
        self.expected_down = True
        self._ended("exited")
        if not self.started():
            self.start_failures += 1
            return True
        self.unexpected_exits.append((self.incarnation, self.popen.returncode))
        log(f"!! {self.name} exited on its own (code {self.popen.returncode}); log tail:")
        print(tail(self.log_path()), flush=True)
        return True

    def started(self):
        try:
            with open(self.log_path(), "rb") as f:
                return b"firebreak started" in f.read()
        except OSError:
            return False


def tail(path, lines=15):
    try:
        with open(path, "rb") as f:
            text = f.read().decode(errors="replace").splitlines()
    except OSError:
        return f"   ({path} unreadable)"
    return "\n".join("   | " + line[:300] for line in text[-lines:])


def write_config(path, listen, queue_lines, durability, secret_path, handler_cmd, log_level,
                 upstream_url, key_limit, limits):
    handler = json.dumps(handler_cmd)
    with open(path, "w") as f:
        f.write(f"""# chaos test, generated
[server]
listen = "{listen}"
threads = 2

[queue]
{queue_lines}
durability = "{durability}"
max_depth = 10000000
dedupe_ttl = "24h"

[worker]
max_in_flight = 32
shutdown_grace = "5s"
sidecar = "127.0.0.1:0"

[telemetry]
log_format = "json"
log_level = "{log_level}"

[[sources]]
name = "chaos"
kind = "hmac"
path = "/hooks/chaos"
secret = {{ file = "{secret_path}" }}
header = "X-Signature"
prefix = "sha256="
dedupe = "/id"
job = "{EVENT_TYPE}"

[[sources]]
name = "doomed"
kind = "hmac"
path = "/hooks/doomed"
secret = {{ file = "{secret_path}" }}
header = "X-Signature"
prefix = "sha256="
dedupe = "/id"
job = "{DOOMED_TYPE}"

[[jobs]]
type = "{EVENT_TYPE}"
handler = {{ command = {handler} }}
concurrency = {EVENT_CONCURRENCY}
timeout = "{JOB_TIMEOUT_S}s"
max_attempts = {EVENT_MAX_ATTEMPTS}
key = "/key"
concurrency_per_key = {key_limit}
backoff = {{ base = "200ms", factor = 2, max = "2s", jitter = "full" }}

[[jobs]]
type = "{DOOMED_TYPE}"
handler = {{ command = {handler} }}
concurrency = 2
timeout = "5s"
max_attempts = {DOOMED_MAX_ATTEMPTS}
backoff = {{ base = "100ms", factor = 2, max = "500ms", jitter = "full" }}

[[integrations]]
name = "{INTEGRATION}"
base_url = "{upstream_url}"
timeout = "{INTEGRATION_TIMEOUT_S}s"
max_concurrency = {SHARED_CAP}
limits = "{limits}"
shared_lease = "{SHARED_LEASE}"
retry = {{ attempts = 1 }}
""")


# ---------------------------------------------------------------------------------------
# Traffic


def pick_key(rng):
    """One of KEYS keys: the HOT_KEYS with their shares, the others evenly."""
    r = rng.random()
    for key, share in HOT_KEYS:
        if r < share:
            return key
        r -= share
    return f"k{rng.randrange(len(HOT_KEYS), KEYS):02d}"


class Send:
    __slots__ = ("event_id", "path", "body", "duplicate", "target", "tries")

    def __init__(self, event_id, path, body, duplicate, target):
        self.event_id = event_id
        self.path = path
        self.body = body
        self.duplicate = duplicate
        self.target = target
        self.tries = 0


class Traffic:
    """Sender threads: bounded rate, round-robin over ingresses, duplicates, retries on 503."""

    MAX_TRIES = 40
    DUPLICATE_RATIO = 0.15
    FAIL_FIRST_RATIO = 0.10
    DOOMED_RATIO = 0.01

    def __init__(self, ingresses, rate, threads, run_tag, seed):
        self.ingresses = ingresses  # [(address, port)]
        self.seed = seed
        self.rate_per_thread = rate / threads
        self.threads_count = threads
        self.run_tag = run_tag
        self.key = SECRET.encode()
        self.lock = threading.Lock()
        self.stop_new = threading.Event()
        self.hard_stop = threading.Event()
        self.threads = []
        self.in_retry = 0
        # Guarded by lock.
        self.sent = 0            # logical sends (new events + duplicate sends), not retries
        self.http_requests = 0
        self.retries = 0
        self.status_503 = 0
        self.conn_errors = 0
        self.acked = 0
        self.duplicate_sends = 0
        self.duplicate_acked = 0
        self.gave_up = 0
        self.unresolved = 0
        self.rejected = {}       # unexpected HTTP status -> count
        self.acked_ids = set()          # normal events
        self.acked_doomed_ids = set()
        self.acked_list = []            # normal ids, for picking duplicates
        self.acked_by = {}              # id -> index of the ingress that ACKed it first
        self.bodies = {}
        self.round_robin = 0

    def start(self):
        for index in range(self.threads_count):
            t = threading.Thread(target=self._sender, args=(index,), daemon=True,
                                 name=f"sender{index}")
            t.start()
            self.threads.append(t)

    def finish(self, timeout):
        """Stops new events; waits (bounded) for pending retries to resolve."""
        self.stop_new.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self.hard_stop.set()
        for t in self.threads:
            t.join(10)

    def progress(self):
        with self.lock:
            return (f"sent {self.sent}, acked {self.acked}, retries {self.retries} "
                    f"(503: {self.status_503}, conn errors: {self.conn_errors}), "
                    f"waiting to retry {self.in_retry}")

    def _new_send(self, rng, thread_index, seq):
        with self.lock:
            target = self.round_robin % len(self.ingresses)
            self.round_robin += 1
            self.sent += 1
            if self.acked_list and rng.random() < self.DUPLICATE_RATIO:
                event_id = rng.choice(self.acked_list)
                self.duplicate_sends += 1
                # A platform's redelivery usually lands on another ingress host.
                target = (self.acked_by[event_id] + 1) % len(self.ingresses)
                return Send(event_id, "/hooks/chaos", self.bodies[event_id], True, target)
        event_id = f"{self.run_tag}-{thread_index}-{seq}"
        if rng.random() < self.DOOMED_RATIO:
            body = json.dumps({"id": event_id, "doomed": True})
            return Send(event_id, "/hooks/doomed", body.encode(), False, target)
        fail_first = rng.random() < self.FAIL_FIRST_RATIO
        body = json.dumps({"id": event_id, "fail_first": fail_first, "key": pick_key(rng),
                           "call": rng.random() < CALL_RATIO,
                           "text": f"chaos event {seq} from sender {thread_index}"}).encode()
        with self.lock:
            self.bodies[event_id] = body
        return Send(event_id, "/hooks/chaos", body, False, target)

    def _post(self, conns, send):
        """Returns (status or None on a connection error/timeout, Retry-After seconds)."""
        address, port = self.ingresses[send.target]
        conn = conns.get(send.target)
        if conn is None:
            conn = http.client.HTTPConnection(address, port, timeout=5)
            conns[send.target] = conn
        signature = "sha256=" + hmac.new(self.key, send.body, hashlib.sha256).hexdigest()
        try:
            conn.request("POST", send.path, body=send.body,
                         headers={"Content-Type": "application/json", "X-Signature": signature})
            response = conn.getresponse()
            response.read()
            retry_after = response.getheader("Retry-After")
            try:
                retry_after = float(retry_after) if retry_after else None
            except ValueError:
                retry_after = None
            return response.status, retry_after
        except (OSError, http.client.HTTPException):
            conn.close()
            conns.pop(send.target, None)
            return None, None

    def _record_ack(self, send):
        with self.lock:
            self.acked += 1
            if send.duplicate:
                self.duplicate_acked += 1
                return
            if send.path == "/hooks/doomed":
                self.acked_doomed_ids.add(send.event_id)
                return
            if send.event_id not in self.acked_ids:
                self.acked_ids.add(send.event_id)
                self.acked_list.append(send.event_id)
                self.acked_by[send.event_id] = send.target

    def _sender(self, thread_index):
        rng = random.Random(self.seed * 1000 + thread_index)
        interval = 1.0 / self.rate_per_thread
        next_slot = time.monotonic() + rng.uniform(0, interval)
        conns = {}
        retry_heap = []  # (due, tiebreak, Send)
        seq = 0
        while not self.hard_stop.is_set():
            if self.stop_new.is_set() and not retry_heap:
                break
            now = time.monotonic()
            if now < next_slot:
                time.sleep(min(next_slot - now, 0.05))
                continue
            if retry_heap and retry_heap[0][0] <= now:
                send = heapq.heappop(retry_heap)[2]
                with self.lock:
                    self.retries += 1
                    self.in_retry -= 1
            elif not self.stop_new.is_set():
                seq += 1
                send = self._new_send(rng, thread_index, seq)
            else:
                time.sleep(0.02)
                continue
            next_slot = max(next_slot + interval, now - 1.0)  # no burst after a stall
            status, retry_after = self._post(conns, send)
            with self.lock:
                self.http_requests += 1
            if status == 200:
                self._record_ack(send)
                continue
            if status is not None and status != 503:
                with self.lock:
                    self.rejected[status] = self.rejected.get(status, 0) + 1
                continue
            send.tries += 1
            with self.lock:
                if status == 503:
                    self.status_503 += 1
                else:
                    self.conn_errors += 1
                if send.tries >= self.MAX_TRIES:
                    self.gave_up += 1
                    continue
                self.in_retry += 1
            if status == 503:
                delay = min(retry_after if retry_after is not None else 1.0, 3.0)
            else:
                delay = min(0.1 * 2 ** min(send.tries, 5), 2.0)
            send.target = (send.target + 1) % len(self.ingresses)
            heapq.heappush(retry_heap, (now + delay * rng.uniform(0.5, 1.5), id(send), send))
        with self.lock:
            self.unresolved += len(retry_heap)
            self.in_retry -= len(retry_heap)
        for conn in conns.values():
            conn.close()


# ---------------------------------------------------------------------------------------
# The run


class ChaosRun:
    def __init__(self, args):
        self.args = args
        self.binary = os.path.abspath(args.bin)
        self.pid = os.getpid()
        self.workdir = tempfile.mkdtemp(prefix=f"{PREFIX}-{self.pid}-")
        self.logdir = os.path.join(self.workdir, "logs")
        os.makedirs(self.logdir)
        self.effects_path = os.path.join(self.workdir, "effects.log")
        self.attempts_path = os.path.join(self.workdir, "doomed-attempts.log")
        self.runs_path = os.path.join(self.workdir, "runs.log")
        self.topology = None
        self.redis = None
        self.upstream = None
        self.partition_window = None  # (host name, link down, link up) in wall time
        self.survivors = []  # (worker name, [pid cmdline]) still in its netns after kill -9
        self.processes = []
        self.traffic = None
        self.chaos_log = []
        self.partitioned = None
        self.torn_down = False
        self.keep = args.keep

    # -- setup ------------------------------------------------------------------------

    def setup(self):
        if not os.access(self.binary, os.X_OK):
            raise SetupError(f"{self.binary} is not an executable")
        for tool in ("redis-server", "ip", "setpriv"):
            if shutil.which(tool) is None:
                raise SetupError(f"{tool} not found (scripts/install-deps.sh test)")
        clean_stale()
        with open(LOCK_PATH, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            subnet = pick_subnet()
            self.topology = Topology(subnet)
            self.topology.create()
        log(f"topology: bridge {self.topology.bridge} {self.topology.gateway}/24, hosts " +
            ", ".join(f"{h.name}={h.address} ({h.netns})" for h in self.topology.hosts))

        appendfsync = self.appendfsync()
        self.redis = Redis(self.topology.gateway, self.workdir, appendfsync)
        self.redis.start()
        log(f"redis-server pid {self.redis.popen.pid} on {self.redis.url()} "
            f"(AOF appendfsync {appendfsync} for queue.durability = \"{self.args.durability}\")")

        self.upstream = Upstream(self.topology.gateway)
        self.upstream.start()
        log(f"upstream of integration {INTEGRATION} on {self.upstream.url()} "
            f"(max_concurrency {SHARED_CAP}, limits = \"{self.limits()}\", "
            f"concurrency_per_key {self.key_limit()})")

        secret_path = os.path.join(self.workdir, "secret")
        with open(secret_path, "w") as f:
            f.write(SECRET)
        for host in self.topology.hosts:
            handler_cmd = [sys.executable, os.path.join(HERE, "handler.py"), self.effects_path,
                           self.attempts_path, self.runs_path, host.name, INTEGRATION]
            config = os.path.join(self.workdir, f"{host.name}.toml")
            write_config(config, f"{host.address}:{INGRESS_PORT}", self.queue_lines(),
                         self.args.durability, secret_path, handler_cmd,
                         # ingress at debug: "webhook accepted" names every stored job
                         "debug" if host.role == "ingest" else "info",
                         self.upstream.url(), self.key_limit(), self.limits())
            self.processes.append(FirebreakProcess(self.binary, host, config, self.logdir))
        self.tools_config = self.processes[0].config  # same redis; used from the root netns

        for proc in self.processes:
            proc.start()
        deadline = time.monotonic() + 20
        for proc in self.processes:
            while not (proc.started() and (proc.host.role != "ingest" or self.ready(proc))):
                if not proc.alive():
                    raise SetupError(f"{proc.name} exited with {proc.popen.returncode} at start:\n"
                                     + tail(proc.log_path()))
                if time.monotonic() > deadline:
                    raise SetupError(f"{proc.name} did not become ready in 20 s:\n" +
                                     tail(proc.log_path()))
                time.sleep(0.1)
        log("all hosts up: " + ", ".join(f"{p.name} pid {p.popen.pid}" for p in self.processes))

    def key_limit(self):
        """concurrency_per_key as configured (the check always holds it to KEY_LIMIT)."""
        return 2 * KEY_LIMIT if self.args.misconfigure_flow else KEY_LIMIT

    def limits(self):
        return "process" if self.args.misconfigure_flow else "shared"

    def appendfsync(self):
        """The AOF setting that gives queue.durability its guarantee, unless overridden."""
        if self.args.appendfsync != "auto":
            return self.args.appendfsync
        return "always" if self.args.durability == "fsync" else "everysec"

    def queue_lines(self):
        if self.args.backend == "sqlite":  # one file shared by every "host" (self-check only)
            return f'backend = "sqlite"\npath = "{os.path.join(self.workdir, "queue.db")}"'
        return f'backend = "redis"\nurl = "{self.redis.url()}"'

    def ready(self, proc):
        try:
            conn = http.client.HTTPConnection(proc.host.address, INGRESS_PORT, timeout=2)
            conn.request("GET", "/readyz")
            status = conn.getresponse().status
            conn.close()
            return status == 200
        except (OSError, http.client.HTTPException):
            return False

    # -- chaos ------------------------------------------------------------------------

    def note(self, message):
        self.chaos_log.append(f"{time.monotonic() - _T0:7.1f}s {message}")
        log(message)

    def run_traffic_and_chaos(self):
        seconds = self.args.seconds
        rng = random.Random(self.args.seed)
        ingresses = [(p.host.address, INGRESS_PORT) for p in self.processes
                     if p.host.role == "ingest"]
        self.traffic = Traffic(ingresses, self.args.rate, self.args.senders, f"r{self.pid}",
                               self.args.seed)
        start = time.monotonic()
        self.traffic.start()
        log(f"traffic: {self.args.rate} req/s over {len(ingresses)} ingress hosts, "
            f"{self.args.senders} senders, for {seconds} s")

        workers = [p for p in self.processes if p.host.role == "worker"]
        cut_off = rng.choice(workers)
        self.partitioned = None  # `cut_off` while its link is down
        # (time offset, action); restarts are scheduled when their kill happens.
        schedule = []
        t = rng.uniform(8, 15)
        while t < seconds - 3:
            schedule.append((t, "kill", None))
            t += rng.uniform(8, 15)
        partition_at = max(5.0, min(0.2 * seconds, seconds - 32.0))
        schedule.append((partition_at, "link_down", cut_off))
        schedule.append((partition_at + 30.0, "link_up", cut_off))
        schedule.append((0.45 * seconds, "redis_kill", None))
        schedule.sort(key=lambda item: item[0])

        next_progress = 10.0
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= seconds and not any(a in ("link_up", "start", "respawn", "redis_start")
                                              for _, a, _ in schedule):
                break
            while schedule and schedule[0][0] <= elapsed:
                _, action, target = schedule.pop(0)
                self.do(action, target, elapsed, schedule, rng)
            for proc in self.processes:
                if proc.check_exit():  # restarted like systemd's Restart=always, RestartSec=2
                    schedule.append((elapsed + 2.0, "respawn", proc))
                    schedule.sort(key=lambda item: item[0])
            if elapsed >= next_progress:
                log("progress: " + self.traffic.progress())
                next_progress += 10.0
            time.sleep(0.1)
        log("traffic window over; waiting for pending retries to resolve")
        self.traffic.finish(timeout=60)
        log("traffic done: " + self.traffic.progress())

    def do(self, action, target, elapsed, schedule, rng):
        if action == "kill":
            # The cut-off worker stays up: the point is a live worker that loses Redis
            # while holding leases, then comes back with stale attempts.
            candidates = [p for p in self.processes if p.alive() and p is not self.partitioned]
            if not candidates:
                return
            victim = rng.choice(candidates)
            victim.kill9()
            self.note(f"kill -9 {victim.name} (pid {victim.popen.pid})")
            schedule.append((elapsed + rng.uniform(2, 5), "start", victim))
            if victim.host.role == "worker":
                schedule.append((elapsed + 0.5, "survivors", victim))
        elif action == "survivors":
            # The worker is down (restarted 2-5 s after its kill): whatever still runs in
            # its netns outlived it, i.e. a handler PR_SET_PDEATHSIG did not take along.
            if not target.alive():
                pids = sh("ip", "netns", "pids", target.host.netns, check=False).split()
                if pids:
                    found = [f"{pid} {read_cmdline(pid)}" for pid in pids]
                    self.survivors.append((target.name, found))
                    log(f"!! processes still in {target.name}'s netns after its kill -9: {found}")
        elif action == "start":
            if not target.alive():
                target.start()
                self.note(f"restarted {target.name} (pid {target.popen.pid})")
        elif action == "respawn":  # after it exited at start; not a chaos action of ours
            if not target.alive():
                target.start()
                log(f"{target.name} exited at start (queue unreachable); started it again")
        elif action == "redis_kill":
            self.redis.kill9()
            self.note(f"kill -9 redis-server (port {self.redis.port})")
            schedule.append((elapsed + 3.0, "redis_start", None))
        elif action == "redis_start":
            self.redis.start()
            self.note(f"redis-server restarted on the same port and dir "
                      f"(pid {self.redis.popen.pid})")
        elif action == "link_down":
            self.partition_window = (target.name, time.time(), None)
            self.topology.set_link(target.host, up=False)
            self.partitioned = target
            self.note(f"network of {target.name} down ({target.host.veth})")
        elif action == "link_up":
            self.topology.set_link(target.host, up=True)
            self.partition_window = (target.name, self.partition_window[1], time.time())
            self.partitioned = None
            self.note(f"network of {target.name} up again")
        schedule.sort(key=lambda item: item[0])

    # -- settle and check -------------------------------------------------------------

    def queue_stats(self):
        try:
            out = subprocess.run([self.binary, "queue", "stats", "-c", self.tools_config, "--json"],
                                 capture_output=True, text=True, timeout=20, cwd=self.workdir)
        except subprocess.TimeoutExpired:
            return None, "queue stats timed out"
        if out.returncode != 0:
            return None, (out.stderr or out.stdout).strip()
        # The JSON array is the line that starts with "["; log lines (e.g. a durability
        # warning) may share stdout with it.
        rows = next((line for line in out.stdout.splitlines() if line.startswith("[")), "")
        try:
            return {row["job_type"]: row for row in json.loads(rows)}, ""
        except (ValueError, KeyError, TypeError) as exc:
            return None, f"unparseable queue stats: {exc}: {out.stdout[:200]}"

    def settle(self, timeout):
        deadline = time.monotonic() + timeout
        stats, last = None, ""
        while time.monotonic() < deadline:
            for proc in self.processes:  # a crash now still must not strand jobs
                if proc.check_exit():
                    proc.start()
            stats, error = self.queue_stats()
            if stats is not None:
                pending = sum(r["ready"] + r["delayed"] + r["in_flight"] for r in stats.values())
                summary = ", ".join(f"{t}: ready {r['ready']} delayed {r['delayed']} "
                                    f"in_flight {r['in_flight']} dead {r['dead']}"
                                    for t, r in sorted(stats.items()))
                if summary != last:
                    log(f"queue: {summary or 'empty'}")
                    last = summary
                if pending == 0:
                    return True, stats
            else:
                log(f"queue stats failed: {error}")
            time.sleep(1)
        return False, stats

    def stop_gracefully(self):
        """SIGTERM to every firebreak process (shutdown_grace is 5 s): each must exit 0."""
        codes = {}
        for proc in self.processes:
            if proc.check_exit():
                continue  # reported as a crash or a start failure already
            codes[proc.name] = proc.stop(timeout=15)
        return codes

    def check(self, settled, stats, stop_codes):
        traffic = self.traffic
        effects = read_records(self.effects_path)
        doomed_attempts = read_records(self.attempts_path)
        effect_lines = sum(len(r["lines"]) for r in effects.values())
        handled_ids = {key.split(":", 1)[1] for key in effects if key.startswith("chaos:")}
        attempted_doomed = {key.split(":", 1)[1] for key in doomed_attempts}
        doomed_jobs = {job for r in doomed_attempts.values() for job in r["jobs"]}
        lost_ids = sorted((traffic.acked_ids - handled_ids) |
                          (traffic.acked_doomed_ids - attempted_doomed))
        # Two jobs for one dedupe key: the duplicate was stored instead of suppressed.
        extra_jobs = sum(len(r["jobs"]) - 1 for r in effects.values())
        extra_jobs += sum(len(r["jobs"]) - 1 for r in doomed_attempts.values())
        # The same job run to success again (at-least-once); a second *job* for one key
        # is a dedupe failure, counted in extra_jobs instead.
        redeliveries = effect_lines - sum(len(r["jobs"]) for r in effects.values())
        # Every job an ingress stored, and every job a duplicate was folded into, must
        # have run to a final state (succeeded with an effect, or dead after its attempts),
        # ACKed or not: a job whose 200 never reached the sender still counts.
        ran_jobs = {job for r in effects.values() for job in r["jobs"]} | doomed_jobs
        accepted_jobs, duplicate_targets = read_ingress_logs(self.logdir)
        stranded = sorted(accepted_jobs - ran_jobs)
        dangling = sorted(duplicate_targets - ran_jobs)
        # firebreak must warn exactly when Redis's AOF setting cannot give the configured
        # guarantee (fsync needs always; process needs always or everysec).
        degraded = count_in_logs(self.logdir, "queue durability degraded")
        appendfsync = self.appendfsync()
        adequate = appendfsync == "always" or (appendfsync == "everysec" and
                                               self.args.durability == "process")

        stats = stats or {}
        event_row = stats.get(EVENT_TYPE, {})
        doomed_row = stats.get(DOOMED_TYPE, {})
        dead = sum(r.get("dead", 0) for r in stats.values())
        unexpected_dead = event_row.get("dead", 0)
        doomed_not_dead = len(doomed_jobs) - doomed_row.get("dead", 0)
        unexpected_exits = [(p.name, inc, code) for p in self.processes
                            for inc, code in p.unexpected_exits]
        runs = read_runs(self.runs_path)
        flow = check_key_limit(runs, self.processes, self.partition_window, KEY_LIMIT,
                               handler_ends(self.logdir))
        call_ms = sorted(r["call_ms"] for r in runs
                         if r["call_ms"] is not None and r["outcome"] == "ok")
        windows = fallback_windows(self.logdir, self.processes)
        cap = check_shared_cap(self.upstream, windows,
                               {h.name: h.address for h in self.topology.hosts}, SHARED_CAP)
        breaker_opened = count_in_logs(self.logdir, "circuit breaker opened")
        with open(os.path.join(self.workdir, "flow.json"), "w") as f:  # for --keep
            json.dump({"history": {p.name: p.history for p in self.processes},
                       "partition": self.partition_window, "t0_wall": _T0_WALL,
                       "upstream": self.upstream.records}, f)

        appendfsync = self.appendfsync()
        print(f"\n== chaos report: {self.args.backend} backend, "
              f"queue.durability = \"{self.args.durability}\" "
              f"(AOF appendfsync {appendfsync}), {self.args.seconds} s, {INGRESS_HOSTS} ingress + "
              f"{WORKER_HOSTS} worker hosts", flush=True)
        lines = [
            ("sent", traffic.sent, "logical sends incl. duplicates, without retries"),
            ("acked", traffic.acked, "sends answered 200"),
            ("distinct ids acked", len(traffic.acked_ids) + len(traffic.acked_doomed_ids),
             f"{len(traffic.acked_doomed_ids)} of them always-failing"),
            ("duplicates suppressed", traffic.duplicate_acked - extra_jobs,
             f"of {traffic.duplicate_acked} ACKed duplicate sends ({traffic.duplicate_sends} sent);"
             f" second jobs for one key: {extra_jobs}"),
            ("handled", len(handled_ids), "distinct ids in the effects file"),
            ("effect lines", effect_lines, ""),
            ("redeliveries", redeliveries, "effect lines beyond one per job"),
            ("dead", dead, f"expected {len(doomed_jobs)} (always-failing jobs); "
                           f"{unexpected_dead} of {EVENT_TYPE}"),
            ("lost", len(lost_ids), "ACKed ids never handled"),
        ]
        hot = ", ".join(f"{key} {flow['peak'].get(key, 0)}" for key, _ in HOT_KEYS)
        lines += [
            ("per-key max concurrency", flow["max"],
             f"limit {KEY_LIMIT} (concurrency_per_key = {self.key_limit()} configured): most "
             f"distinct jobs of one key running at once, counted runs; {hot}; "
             f"{flow['keys_at_limit']} of {KEYS} keys reached {KEY_LIMIT}; "
             f"all runs incl. excused: {flow['raw_max']}"),
            ("shared cap peak", cap["peak"],
             f"cap {SHARED_CAP} (limits = \"{self.limits()}\"): most upstream requests at once "
             f"from lease holders; raw peak of all requests {cap['raw_peak']}"),
        ]
        for name, value, note in lines:
            print(f"{name}: {value}" + (f"    # {note}" if note else ""))
        ex = flow["excused"]
        print(f"# keyed runs {flow['runs']}: counted {flow['counted']}, excused {sum(ex.values())} "
              f"(worker killed before the run ended {ex['killed'] + ex['outlived']}, of them "
              f"ended after the kill {ex['outlived']}; on the partitioned host during its "
              f"partition {ex['partitioned']}); never ended on a live worker "
              f"{flow['unended_live']}; outcomes {flow['outcomes']}")
        print(f"# upstream requests {cap['requests']}, left out of the cap check: "
              f"{cap['in_fallback']} that arrived during their sender's fallback + "
              f"{FALLBACK_MARGIN_S:.1f} s (peak of those alone {cap['fallback_alone_peak']}), "
              f"{cap['abandoned']} abandoned by their caller (peak with them "
              f"{cap['peak_with_abandoned']}); still in progress at the check "
              f"{cap['unfinished']}; 'circuit breaker opened' log lines {breaker_opened}")
        spans = "; ".join(f"{host} " + ", ".join(
            f"{start - _T0_WALL:.1f}-{end - _T0_WALL:.1f}s" for start, end in spans)
            for host, spans in sorted(windows.items()))
        if call_ms:
            print(f"# integration calls through the sidecar that succeeded: {len(call_ms)}, "
                  f"handler-side latency p50 {percentile(call_ms, 0.5):.0f} ms, p90 "
                  f"{percentile(call_ms, 0.9):.0f} ms, p99 {percentile(call_ms, 0.99):.0f} ms, "
                  f"max {call_ms[-1]:.0f} ms (upstream works {UPSTREAM_WORK_S[0] * 1000:.0f}-"
                  f"{UPSTREAM_WORK_S[1] * 1000:.0f} ms)")
        print(f"# shared-limits fallback windows (\"unavailable\" .. \"restored\"/end, run "
              f"time): {spans or 'none'}")
        print(f"# handlers that outlived their worker's kill -9: "
              f"{self.survivors or 'none'}")
        print(f"# stored jobs seen in ingress logs {len(accepted_jobs)}, "
              f"never run: {len(stranded)}; "
              f"duplicates folded into a job that never ran: {len(dangling)}")
        print(f"# \"queue durability degraded\" warnings: {degraded} "
              f"(expected {'none' if adequate else 'some'})")
        print(f"# http requests {traffic.http_requests}, retries {traffic.retries} "
              f"(503: {traffic.status_503}, connection errors/timeouts: {traffic.conn_errors}), "
              f"gave up {traffic.gave_up}, unresolved {traffic.unresolved}, "
              f"other statuses {traffic.rejected or 'none'}")
        print(f"# queue settled: {settled}; final stats: "
              f"{json.dumps(list(stats.values())) if stats else 'unavailable'}")
        start_failures = {p.name: p.start_failures for p in self.processes if p.start_failures}
        bad_stops = {name: code for name, code in stop_codes.items() if code != 0}
        print(f"# graceful stop (SIGTERM) exit codes: {stop_codes}")
        print(f"# crashes (exits after a successful start): {unexpected_exits or 'none'}; "
              f"exits at start because the queue was unreachable, restarted after 2 s: "
              f"{start_failures or 'none'}")
        print("# chaos actions:\n" + "\n".join("#   " + line for line in self.chaos_log))

        failures = []
        if lost_ids:
            failures.append(f"lost {len(lost_ids)} ACKed ids, e.g. {lost_ids[:5]}")
        if not settled:
            failures.append("queue did not settle (jobs left ready/delayed/in flight)")
        if stranded:
            failures.append(f"{len(stranded)} stored jobs never ran, e.g. {stranded[:5]}")
        if dangling:
            failures.append(f"{len(dangling)} dedupe keys point at jobs that never ran, "
                            f"e.g. {dangling[:5]}")
        if adequate and degraded:
            failures.append(f"{degraded} 'queue durability degraded' warnings although Redis "
                            f"runs with appendfsync {appendfsync}")
        if not adequate and not degraded:
            failures.append(f"no 'queue durability degraded' warning although appendfsync "
                            f"{appendfsync} cannot give durability = {self.args.durability}")
        if unexpected_dead:
            failures.append(f"{unexpected_dead} {EVENT_TYPE} jobs dead (none should be)")
        if settled and doomed_not_dead:
            failures.append(f"{doomed_not_dead} always-failing jobs not in the DLQ")
        if extra_jobs:
            failures.append(f"{extra_jobs} duplicate sends became second jobs")
        if traffic.rejected:
            failures.append(f"unexpected HTTP statuses {traffic.rejected}")
        if unexpected_exits:
            failures.append(f"processes crashed: {unexpected_exits}")
        if bad_stops:
            failures.append(f"SIGTERM did not end processes with exit 0: {bad_stops}")
        if traffic.acked == 0:
            failures.append("nothing was ACKed")
        if flow["over"]:
            key, t, jobs = flow["over"][0]
            failures.append(f"per-key limit {KEY_LIMIT} broken {len(flow['over'])} times, first "
                            f"key {key} at {t - _T0_WALL:.3f}s: jobs {jobs}")
        if flow["twice"]:
            key, job, t = flow["twice"][0]
            failures.append(f"{len(flow['twice'])} times one job ran twice at once on live "
                            f"workers, first {job} (key {key}) at {t - _T0_WALL:.3f}s")
        if cap["over"]:
            t, now = cap["over"][0]
            failures.append(f"shared cap {SHARED_CAP} exceeded by lease holders: "
                            f"{len(cap['over'])} arrivals over it, peak {cap['peak']}, first "
                            f"at {t - _T0_WALL:.3f}s ({now} at once)")
        if self.survivors:
            failures.append(f"handler processes outlived their worker's kill -9: "
                            f"{self.survivors}")
        if flow["runs"] == 0 or cap["requests"] == 0:
            failures.append("no keyed runs or no upstream requests recorded")
        for failure in failures:
            print(f"FAIL: {failure}")
        print("PASS" if not failures else "FAILED", flush=True)
        return EXIT_PASS if not failures else EXIT_FAIL

    # -- teardown ---------------------------------------------------------------------

    def teardown(self):
        if self.torn_down:
            return
        self.torn_down = True
        if self.traffic:
            self.traffic.hard_stop.set()
        for proc in self.processes:
            proc.stop(timeout=8)
        if self.redis:
            self.redis.stop()
        if self.upstream:
            self.upstream.stop()
        if self.topology:
            self.topology.destroy()
        if self.keep:
            log(f"kept logs and data in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def print_log_tails(self):
        for proc in self.processes:
            print(f"--- {proc.name} (incarnation {proc.incarnation}) log tail")
            print(tail(proc.log_path(), 10))


def read_ingress_logs(logdir):
    """Job ids the ingress hosts stored ("webhook accepted") and the job ids duplicates
    were folded into ("duplicate webhook ignored"), over every incarnation's log."""
    accepted, duplicate_of = set(), set()
    for name in os.listdir(logdir):
        if not name.startswith("ingest"):
            continue
        with open(os.path.join(logdir, name), errors="replace") as f:
            for line in f:
                if "webhook accepted" not in line and "duplicate webhook ignored" not in line:
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # the last line of a process killed mid-write
                if entry.get("msg") == "webhook accepted":
                    accepted.add(entry.get("job_id"))
                elif entry.get("msg") == "duplicate webhook ignored":
                    duplicate_of.add(entry.get("job_id"))
    return accepted, duplicate_of


def count_in_logs(logdir, needle):
    """Log lines containing `needle`, over every process and incarnation."""
    total = 0
    for name in os.listdir(logdir):
        with open(os.path.join(logdir, name), errors="replace") as f:
            total += sum(1 for line in f if needle in line)
    return total


def read_records(path):
    """dedupe_key -> {"jobs": {job_id}, "lines": [attempt, ...]} from a handler record file."""
    records = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) != 3:
                    continue
                key, job_id, attempt = parts
                record = records.setdefault(key, {"jobs": set(), "lines": []})
                record["jobs"].add(job_id)
                record["lines"].append(int(attempt))
    except FileNotFoundError:
        pass
    return records


def read_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:200]
    except OSError:
        return "?"


def parse_log_ts(text):
    """firebreak's "2026-12-05T05:42:30.367Z" as a Unix time."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


# ---------------------------------------------------------------------------------------
# Flow control and shared limits checks (rules in the module docstring)


def read_runs(path):
    """[{run, key, job, attempt, host, worker_pid, start, end (None: never ended), outcome,
    call_ms (None: no call)}] from the handlers' S/E records."""
    runs = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 8 and parts[0] == "S":
                    _, run, key, job, attempt, host, worker_pid, t = parts
                    runs[run] = {"run": run, "key": key, "job": job, "attempt": int(attempt),
                                 "host": host, "worker_pid": int(worker_pid),
                                 "start": float(t), "end": None, "outcome": None,
                                 "call_ms": None}
                elif len(parts) == 10 and parts[0] == "E" and parts[1] in runs:
                    runs[parts[1]]["end"] = float(parts[7])
                    runs[parts[1]]["outcome"] = parts[8]
                    runs[parts[1]]["call_ms"] = None if parts[9] == "-" else float(parts[9])
    except FileNotFoundError:
        pass
    return list(runs.values())


def incarnation_of(proc, run):
    """The incarnation of worker `proc` that ran `run`: by the handler's parent pid, else
    the one running when the run started."""
    for entry in proc.history:
        if entry["pid"] == run["worker_pid"]:
            return entry
    for entry in proc.history:
        if entry["start"] <= run["start"] and (entry["end"] is None or run["start"] < entry["end"]):
            return entry
    return None


def handler_ends(logdir):
    """handler pid -> [wall times] at which a worker logged "handler process ended during a
    job" for it (killed at the job timeout, or exited): a run of that process that wrote
    no end record was over by then."""
    ends = {}
    for name in os.listdir(logdir):
        if not name.startswith("worker"):
            continue
        with open(os.path.join(logdir, name), errors="replace") as f:
            for line in f:
                if "handler process ended during a job" not in line:
                    continue
                try:
                    record = json.loads(line)
                    ends.setdefault(int(record["pid"]), []).append(parse_log_ts(record["ts"]))
                except (ValueError, KeyError, TypeError):
                    continue
    return ends


def check_key_limit(runs, processes, partition_window, limit, ended_at):
    """Check 1. Returns a dict of numbers and the violations."""
    by_name = {p.name: p for p in processes}
    counted, excused = [], {"killed": 0, "outlived": 0, "partitioned": 0}
    unended_live = 0
    every = []  # all runs with an end, for the raw count
    for run in runs:
        entry = incarnation_of(by_name[run["host"]], run) if run["host"] in by_name else None
        died_at = entry["end"] if entry and entry["how"] in ("killed", "exited") else None
        ended = run["end"]
        if ended is None:
            # Over when its worker was killed, or when its worker logged the end of its
            # process (killed at the job timeout; log times are cut to the millisecond:
            # + 1 ms), which is before the job's slot was given back; at the latest start
            # + job timeout. Never before its start (a run may start just after our kill
            # was noted and before the signal landed).
            pid = int(run["run"].split(".")[0])
            candidates = [t + 0.001 for t in ended_at.get(pid, []) if t + 0.001 >= run["start"]]
            if died_at is not None:
                candidates.append(died_at)
            ended = max(run["start"], min(candidates, default=run["start"] + JOB_TIMEOUT_S))
        every.append(dict(run, end=ended))
        if partition_window and run["host"] == partition_window[0]:
            down, up = partition_window[1], partition_window[2] or float("inf")
            if run["start"] <= up and ended >= down:
                excused["partitioned"] += 1
                continue
        if run["end"] is None and died_at is not None:
            excused["killed"] += 1
            continue
        if died_at is not None and run["end"] >= died_at:
            excused["outlived"] += 1
            continue
        if run["end"] is None:
            unended_live += 1
        counted.append(dict(run, end=ended))

    def sweep(selected, distinct):
        """Per key: the most runs (or distinct jobs) at once, the moments above `limit`
        and the starts of a job already running."""
        events = []
        for run in selected:
            events.append((run["start"], 1, run))
            # Ends first at equal times, except a run's own end: one that ended in the
            # millisecond it started is ended after its start.
            events.append((run["end"], 0 if run["end"] > run["start"] else 2, run))
        events.sort(key=lambda e: (e[0], e[1]))
        running, peak, over, twice = {}, {}, [], []
        for t, kind, run in events:
            jobs = running.setdefault(run["key"], {})
            is_start = kind == 1
            if is_start:
                if jobs.get(run["job"], 0) > 0:
                    twice.append((run["key"], run["job"], t))
                jobs[run["job"]] = jobs.get(run["job"], 0) + 1
            else:
                jobs[run["job"]] -= 1
                if jobs[run["job"]] == 0:
                    del jobs[run["job"]]
            now = len(jobs) if distinct else sum(jobs.values())
            peak[run["key"]] = max(peak.get(run["key"], 0), now)
            if is_start and now > limit:
                over.append((run["key"], t, sorted(jobs)))
        return peak, over, twice

    peak, over, twice = sweep(counted, distinct=True)
    raw_peak, _, _ = sweep(every, distinct=False)
    return {
        "runs": len(runs), "counted": len(counted), "excused": excused,
        "unended_live": unended_live, "peak": peak, "over": over, "twice": twice,
        "max": max(peak.values(), default=0), "raw_max": max(raw_peak.values(), default=0),
        "keys_at_limit": sum(1 for v in peak.values() if v >= limit),
        "outcomes": count_by(runs, "outcome"),
    }


def percentile(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def count_by(items, field):
    counts = {}
    for item in items:
        counts[item[field]] = counts.get(item[field], 0) + 1
    return counts


def fallback_windows(logdir, processes):
    """host name -> [(start, end)] wall-time intervals in which that host's worker process
    counted the integration's limits per process ("shared limits unavailable" until
    "shared limits restored", or until the process ended)."""
    windows = {}
    for proc in processes:
        if proc.host.role != "worker":
            continue
        for entry in proc.history:
            path = os.path.join(proc.logdir, f"{proc.name}.{entry['incarnation']}.log")
            opened = None
            try:
                with open(path, errors="replace") as f:
                    for line in f:
                        if "shared limits" not in line:
                            continue
                        try:
                            record = json.loads(line)
                        except ValueError:
                            continue
                        msg = record.get("msg", "")
                        if msg.startswith("shared limits unavailable") and opened is None:
                            opened = parse_log_ts(record["ts"])
                        elif msg.startswith("shared limits restored") and opened is not None:
                            windows.setdefault(proc.name, []).append(
                                (opened, parse_log_ts(record["ts"])))
                            opened = None
            except OSError:
                continue
            if opened is not None:
                windows.setdefault(proc.name, []).append(
                    (opened, entry["end"] if entry["end"] is not None else float("inf")))
    return windows


def check_shared_cap(upstream, windows, address_of, cap):
    """Check 2: replays the upstream's enter/leave order, leaving out requests that arrived
    from a host inside one of its fallback windows (+ FALLBACK_MARGIN_S) and requests
    whose caller had closed the connection before they were done (abandoned)."""
    with upstream.lock:
        records = list(upstream.records)
        raw_peak = upstream.peak
        in_flight_now = upstream.in_flight
    host_of = {address: name for name, address in address_of.items()}
    counted, in_fallback, abandoned = [], [], []
    for record in records:
        arrived, client, gone = record[2], record[4], record[5]
        host = host_of.get(client, client)
        if any(start <= arrived <= end + FALLBACK_MARGIN_S
               for start, end in windows.get(host, [])):
            in_fallback.append(record)
        elif gone:
            abandoned.append(record)
        else:
            counted.append(record)

    def replay(selected):
        """(peak, [(arrival, count) of each arrival above cap]) in enter/leave order."""
        events = sorted([(r[0], 1, r[2]) for r in selected] + [(r[1], -1, r[2]) for r in selected])
        now, peak, over = 0, 0, []
        for _seq, delta, arrived in events:
            now += delta
            peak = max(peak, now)
            if delta > 0 and now > cap:
                over.append((arrived, now))
        return peak, over

    peak, over = replay(counted)
    return {"requests": len(records), "in_fallback": len(in_fallback),
            "abandoned": len(abandoned), "peak": peak, "over": over, "raw_peak": raw_peak,
            "fallback_alone_peak": replay(in_fallback)[0],
            "peak_with_abandoned": replay(counted + abandoned)[0],
            "unfinished": in_flight_now}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", required=True, help="release firebreak binary")
    parser.add_argument("--seconds", type=int, default=300, help="traffic + chaos duration")
    parser.add_argument("--rate", type=float, default=200, help="total requests/s (incl. retries)")
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--durability", choices=["fsync", "process"], default="fsync")
    parser.add_argument("--settle", type=int, default=90, help="max seconds to drain at the end")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--backend", choices=["redis", "sqlite"], default="redis",
                        help="sqlite: every host shares one file on this disk; only for "
                             "checking the test itself (Redis still runs and is restarted)")
    parser.add_argument("--appendfsync", choices=["auto", "always", "everysec", "no"],
                        default="auto",
                        help="override Redis's AOF setting (\"no\" = no AOF: shows that the "
                             "checks catch what a Redis restart loses)")
    parser.add_argument("--misconfigure-flow", action="store_true",
                        help="configure concurrency_per_key = 4 and limits = \"process\" but "
                             "check 2 and the shared cap: the run must FAIL (shows that the "
                             "flow checks can see a broken limit)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temp dir (logs, effects, redis data)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("chaos.py: needs root (network namespaces)", file=sys.stderr)
        return EXIT_SETUP
    if args.seconds < 45:
        print("chaos.py: --seconds must be at least 45 (the partition alone lasts 30 s)",
              file=sys.stderr)
        return EXIT_SETUP
    if args.seed is None:
        args.seed = random.randrange(1 << 30)

    def on_sigterm(signum, frame):
        raise Interrupted()

    signal.signal(signal.SIGTERM, on_sigterm)
    run = ChaosRun(args)
    atexit.register(run.teardown)
    log(f"seed {args.seed}, workdir {run.workdir}")
    try:
        try:
            run.setup()
        except SetupError as exc:
            log(f"setup failed: {exc}")
            return EXIT_SETUP
        run.run_traffic_and_chaos()
        log(f"waiting up to {args.settle} s for the queue to settle")
        settled, stats = run.settle(args.settle)
        stop_codes = run.stop_gracefully()
        code = run.check(settled, stats, stop_codes)
        if code != EXIT_PASS:
            run.print_log_tails()
        return code
    except (KeyboardInterrupt, Interrupted):
        log("interrupted; tearing down")
        return EXIT_FAIL
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        run.teardown()
        log("teardown done")


if __name__ == "__main__":
    sys.exit(main())
