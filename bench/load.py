"""Many readers at once: `python app.py` under concurrent gradio_client users asking `/ask` and `/chat`.

    python bench/load.py [--users 50] [--requests 1000] [--corpus DIR] [--work DIR] [--model NAME]

Starts the chat as a user does (`python app.py` on the seed corpus by default, with the packaged model), waits
until it answers, then runs a fixed number of requests from `--users` concurrent users, each its own
gradio_client.Client asking questions about the corpus in turn, half through `/ask`, half through `/chat`.
Before that, each endpoint is timed alone, one request at a time, for the cost of `/chat` against `/ask`
for the same questions. Prints, with the load average beside every figure:

- alone: p50 per endpoint and their ratio;
- under load: throughput, p50/p95/p99 per endpoint, errors (any exception, or a reply without a passage or
  a verdict);
- the server's CPU time per answer (the clients share the machine: the rest of it is theirs; `--nice`
  gives them the lowest priority, so that they take only what the server leaves);
- the server's memory (RSS of the app process and its children): after start, at the end of each load
  round, and after `--idle` seconds idle (150 by default: the app forgets sessions idle for two minutes,
  `rag.serve.chat.SESSION_IDLE_SECONDS`; rounds on one server show whether it grows or settles).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "Who is Lee Jae-myung's main rival according to the poll?",
    "Which senator from Vermont did Kim Jong-hoon meet?",
    "What did the DPK leader say about the talks between the US and North Korea?",
    "When did Lee Jae-myung become the party's candidate?",
    "What is the Minjung Party made of?",
    "How did the Democratic Party react to the summit?",
    "Who was Kim Kyoung-soo's political mentor?",
    "What did the poll say about support for the ruling party?",
]


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    total, pids = 0, [pid]
    while pids:
        p = pids.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
        pids += children(p)
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process and its children have used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def start_app(corpus: Path, index: Path, model: str | None) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, str(ROOT / "app.py"), "--corpus", str(corpus), "--index", str(index), "--port", str(port)]
    if model:
        cmd += ["--model", model]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "gradio_api/info", timeout=2):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("app.py exited before it answered") from None
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("app.py did not answer within 600 s")


def until_idle(pid: int, limit: float = 300.0) -> float:
    """Wait until the server (and any child of it) has used under a quarter of a core in each of three
    two-second windows in a row: the work it does behind its page is done (loading uses a whole core;
    Gradio's queue polls at about 8% when idle). Returns the seconds waited."""
    started, quiet = time.monotonic(), 0
    while quiet < 3 and time.monotonic() - started < limit:
        before = cpu_seconds(pid) + sum(cpu_seconds(child) for child in children(pid))
        time.sleep(2)
        after = cpu_seconds(pid) + sum(cpu_seconds(child) for child in children(pid))
        quiet = quiet + 1 if after - before < 0.5 else 0
    return time.monotonic() - started


def children(pid: int) -> list[int]:
    """The processes `pid` started, from any of its threads."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


class PlainHttpClient:
    """Gradio's REST calls over plain HTTP (a POST, then the reply's event stream), with each endpoint's
    defaults filled in from `/gradio_api/info`, as gradio_client fills them, and one session per user, as a
    browser tab or gradio_client keeps (a new session per call costs the server a session's setup each time
    and holds its state). It costs the machine a few ms a request where gradio_client costs about 60 ms, so
    on a shared machine the clients leave the server the CPU that clients on other machines would
    (`--client http`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = uuid.uuid4().hex[:11]
        with urllib.request.urlopen(url + "gradio_api/info", timeout=30) as reply:
            endpoints = json.load(reply)["named_endpoints"]
        self.defaults = {name: [p.get("parameter_default") for p in e["parameters"]] for name, e in endpoints.items()}

    def predict(self, question: str, api_name: str):
        body = {"data": [question, *self.defaults[api_name][1:]], "session_hash": self.session}
        data = json.dumps(body).encode()
        call = self.url + "gradio_api/call" + api_name
        request = urllib.request.Request(call, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as reply:
            event_id = json.load(reply)["event_id"]
        event = None
        with urllib.request.urlopen(f"{call}/{event_id}", timeout=120) as stream:
            for raw in stream:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event in ("complete", "error"):
                    payload = json.loads(line[6:])
                    if event == "error":
                        raise RuntimeError(f"{api_name}: {payload}")
                    return payload[0]
        raise RuntimeError(f"{api_name}: the event stream ended without a reply")


def make_client(url: str, kind: str):
    if kind == "http":
        return PlainHttpClient(url)
    from gradio_client import Client

    return Client(url, verbose=False)


def ask(client, endpoint: str, question: str) -> None:
    """One request; raises when the reply is not a whole answer."""
    if endpoint == "/ask":
        reply = client.predict(question, api_name="/ask")
        if not isinstance(reply, dict) or "found" not in reply or not reply.get("passages"):
            raise RuntimeError(f"/ask gave {json.dumps(reply)[:200]}")
    else:
        reply = client.predict(question, api_name="/chat")
        if not isinstance(reply, str) or "\n1. " not in reply:
            raise RuntimeError(f"/chat gave {str(reply)[:200]}")


def alone(url: str, rounds: int, kind: str) -> dict[str, float]:
    client = make_client(url, kind)
    out = {}
    for endpoint in ("/ask", "/chat"):
        times = []
        for n in range(rounds * len(QUESTIONS)):
            started = time.perf_counter()
            ask(client, endpoint, QUESTIONS[n % len(QUESTIONS)])
            times.append(time.perf_counter() - started)
        out[endpoint] = percentile(times, 0.5)
    return out


def under_load(url: str, users: int, requests: int, kind: str) -> dict:
    clients = [make_client(url, kind) for _ in range(users)]
    times: dict[str, list[float]] = {"/ask": [], "/chat": []}
    errors: list[str] = []
    counter = iter(range(requests))
    lock = threading.Lock()

    def user(client) -> None:
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            endpoint = "/ask" if n % 2 == 0 else "/chat"
            started = time.perf_counter()
            try:
                ask(client, endpoint, QUESTIONS[(n // 2) % len(QUESTIONS)])
            except Exception as exc:  # noqa: BLE001 - every failure is counted, whatever it is
                with lock:
                    errors.append(f"{endpoint}: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            with lock:
                times[endpoint].append(time.perf_counter() - started)

    started = time.perf_counter()
    threads = [threading.Thread(target=user, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return {"wall_s": wall, "times": times, "errors": errors}


def load_round(proc: subprocess.Popen, url: str, args: argparse.Namespace, round_: int, start_mb: float) -> None:
    cpu_before = cpu_seconds(proc.pid)
    result = under_load(url, args.users, args.requests, args.client)
    server_cpu = cpu_seconds(proc.pid) - cpu_before
    end_mb = rss_mb(proc.pid)
    done = sum(len(v) for v in result["times"].values())
    print(
        f"\nround {round_}: {args.users} users, {args.requests} requests in {result['wall_s']:.1f} s: "
        f"{done / result['wall_s']:.1f} answers/s, {len(result['errors'])} errors ({load()}); the server used "
        f"{server_cpu:.1f} CPU s ({server_cpu / max(done, 1) * 1000:.0f} ms an answer), the clients the rest"
    )
    print("| endpoint | answers | p50 | p95 | p99 |\n|---|---|---|---|---|")
    for endpoint, times in result["times"].items():
        p50, p95, p99 = (percentile(times, q) for q in (0.5, 0.95, 0.99))
        print(f"| {endpoint} | {len(times)} | {p50:.2f} s | {p95:.2f} s | {p99:.2f} s |")
    for error in result["errors"][:5]:
        print("error:", error)
    time.sleep(args.idle)
    idle_mb = rss_mb(proc.pid)
    print(
        f"server RSS: start {start_mb:.0f} MB, end of load {end_mb:.0f} MB, after {args.idle:.0f} s idle "
        f"{idle_mb:.0f} MB ({load()})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--work", type=Path, default=None, help="where the index is built (default: a temp dir)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--idle", type=float, default=150.0, help="seconds idle before each memory reading")
    parser.add_argument("--rounds", type=int, default=2, help="load rounds on the same server (memory growth)")
    parser.add_argument(
        "--nice", action="store_true", help="run the clients at the lowest CPU priority, the server at its own"
    )
    parser.add_argument(
        "--client",
        choices=("gradio", "http"),
        default="gradio",
        help="gradio_client (as most programs call it) or plain HTTP (light enough to leave the server the CPU)",
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="verbatim-load-"))
    index = work / "index"
    proc, url = start_app(args.corpus, index, args.model)
    if args.nice:
        os.nice(19)  # the clients yield the CPU to the server they measure, as clients on other machines would
    try:
        # The model, the dense index and the question encoder load behind the page; measure once they have.
        settled = until_idle(proc.pid)
        single = alone(url, rounds=2, kind=args.client)
        start_mb = rss_mb(proc.pid)
        print(
            f"server up at {url}, idle {settled:.0f} s after it first answered; RSS after a first round of "
            f"questions {start_mb:.0f} MB ({load()})"
        )
        ratio = single["/chat"] / single["/ask"]
        print(
            f"alone, one request at a time: /ask p50 {single['/ask'] * 1000:.0f} ms, /chat p50 "
            f"{single['/chat'] * 1000:.0f} ms, /chat / /ask = {ratio:.2f} ({load()})"
        )
        for round_ in range(1, args.rounds + 1):
            load_round(proc, url, args, round_, start_mb)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
