"""Judge throughput: calls per second against a local chat-completions server that answers after a fixed
delay, versus the ceiling ``concurrency / delay``. CPU only (no GPU, no network): it measures the suite's
own overhead (threads, the openai client, JSON, the store's fsync'd appends), not a model.

    PYTHONPATH=. python benchmarks/judge_throughput.py [--calls 64] [--delays 0.05,0.2] [--concurrency 1,4,16]

Each point judges ``--calls`` calls (synthetic 512x512 images, the real rubrics from
$DREAMBENCH_JUDGE_RUBRICS or ../shared/dreambench-plus) into a fresh store and prints measured calls/s,
the ceiling and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the local server of the tests

from judge_server import ChatServer
from PIL import Image

from dreambench.judge.client import JudgeClient
from dreambench.judge.encode import ImageCache
from dreambench.judge.items import JudgeItem
from dreambench.judge.profiles import DREAMBENCH_PLUS
from dreambench.judge.rubrics import load_rubrics
from dreambench.judge.runner import plan_calls, run_calls
from dreambench.judge.store import CallStore


def _items(folder: Path, n: int) -> list[JudgeItem]:
    ref = folder / "ref.png"
    Image.linear_gradient("L").resize((512, 512)).convert("RGB").save(ref)
    items = []
    for i in range(n):
        p = folder / f"gen{i}.png"
        Image.new("RGB", (512, 512), (i % 256, (7 * i) % 256, 90)).save(p)
        items.append(JudgeItem("bench", f"s{i}", i % 9, "object", f"a teapot number {i}", p, ref))
    return items


def measure(calls_n: int, delay: float, concurrency: int, rubrics) -> float:
    """Calls per second of ``calls_n`` calls (one metric each half) at ``concurrency``, server delay ``delay``."""
    with tempfile.TemporaryDirectory() as d, ChatServer(delay_s=delay) as srv:
        images = ImageCache()
        calls = plan_calls(_items(Path(d), (calls_n + 1) // 2), DREAMBENCH_PLUS, rubrics, "bench", 1, 1, images)
        calls = calls[:calls_n]
        for c in calls:  # encode before timing: the benchmark is about calls, not JPEG
            images.get(c.item.image), images.get(c.item.reference)
        client = JudgeClient(srv.base_url, "k", "bench", 1.0, max_retries=0, timeout_s=30)
        store = CallStore(Path(d) / "calls.jsonl")
        t0 = time.perf_counter()
        p = run_calls(calls, DREAMBENCH_PLUS, client, images, store, concurrency)
        dt = time.perf_counter() - t0
        assert p.finished == len(calls) and p.failed == 0, p
    return len(calls) / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=64)
    ap.add_argument("--delays", default="0.05,0.2")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--rubrics", default=None)
    a = ap.parse_args()
    rubrics = load_rubrics(DREAMBENCH_PLUS, a.rubrics or REPO.parent / "shared" / "dreambench-plus")
    print(f"{'delay s':>8} {'conc':>5} {'calls/s':>9} {'ceiling':>9} {'ratio':>6}")
    for delay in (float(x) for x in a.delays.split(",")):
        for conc in (int(x) for x in a.concurrency.split(",")):
            rate = measure(a.calls, delay, conc, rubrics)
            ceiling = conc / delay
            print(f"{delay:8.3f} {conc:5d} {rate:9.1f} {ceiling:9.1f} {rate / ceiling:6.2f}", flush=True)


if __name__ == "__main__":
    main()
