"""How long a person waits: `rag ask` from a new process, and `python app.py` until its page answers.

    python bench/startup.py [--calls 10] [--starts 3] [--corpus DIR]

Builds an index of the corpus (the seed articles by default) in a temporary folder, then:

- times `rag ask QUESTION --index DIR` as a shell runs it, `--calls` times over three questions, beside the
  floor of any command here: a new interpreter that imports numpy (the ratio is the cost of our own work);
- starts `python app.py --index DIR` `--starts` times and times the first HTTP 200 of its page, then the
  first answer of `/ask` (plain REST calls, as a program or a health check makes them).

Prints median, 90th percentile and worst of each, with the load average beside every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "Who is Lee Jae-myung's main rival according to the poll?",
    "What is the China-North Korea mutual defense pledge?",
    "이재명 후보의 경쟁자는 누구인가?",
]


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"median {statistics.median(ordered):.2f} s, p90 {p90:.2f} s, worst {ordered[-1]:.2f} s"


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask_over_rest(url: str, question: str) -> dict:
    data = json.dumps({"data": [question, 5, "hybrid", "", "", ""]}).encode()
    request = urllib.request.Request(
        url + "gradio_api/call/ask", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as reply:
        event_id = json.load(reply)["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/ask/{event_id}", timeout=120) as stream:
        lines = stream.read().decode().splitlines()
    if "event: complete" not in lines:
        raise SystemExit(f"/ask did not answer: {lines[:4]}")
    return json.loads(lines[lines.index("event: complete") + 1][len("data: ") :])[0]


def app_start(index: Path, corpus: Path) -> tuple[float, float]:
    """Seconds from launch to the page's first 200, and to the first answer of /ask."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    cmd = [sys.executable, str(ROOT / "app.py"), "--index", str(index), "--corpus", str(corpus), "--port", str(port)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit("app.py exited before it answered")
            try:
                with urllib.request.urlopen(url, timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                time.sleep(0.05)
        page = time.perf_counter() - started
        answer = ask_over_rest(url, QUESTIONS[0])
        if not answer.get("passages"):
            raise SystemExit(f"/ask gave no passage: {answer}")
        return page, time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="verbatim-startup-"))
    index = work / "index"
    rag = [sys.executable, "-m", "rag"]
    try:
        subprocess.run([*rag, "index", str(args.corpus), "--index", str(index), "--quiet"], check=True)
        floor = [timed([sys.executable, "-c", "import numpy"]) for _ in range(args.calls)]
        asks = [timed([*rag, "ask", QUESTIONS[n % 3], "--index", str(index)]) for n in range(args.calls)]
        print(f"new interpreter importing numpy: {summary(floor)} ({load()})")
        print(
            f"rag ask, {args.calls} calls: {summary(asks)}; "
            f"{statistics.median(asks) / statistics.median(floor):.1f}x the floor ({load()})"
        )
        starts = [app_start(index, args.corpus) for _ in range(args.starts)]
        print(f"python app.py, page answers: {summary([s[0] for s in starts])} ({load()})")
        print(f"python app.py, first /ask answered: {summary([s[1] for s in starts])} ({load()})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
