"""Service benchmark: POST /score over HTTP beside in-process scoring of the same batches.

    python -m kg_reward.benchmarks.service [--reports CSV] [--requests 100]

Steps:
1. data: batches of 64 items built from real report sentences (the Indiana development
   reports beside the checkout, ``<repo>/../shared/data/iu_xray``, else the sample shipped
   with the tests). As in GRPO, 8 completions of about 60 words share each reference, so a
   batch holds 8 distinct references. Completions mix sentences of their own report with
   sentences of other reports.
2. in-process beside one worker: ``RewardScorer.score`` and POST /score to ``kg-reward
   serve`` (127.0.0.1, one worker) take turns on the same batches, reference cache on
   and off, so that both meet the same load from other programs.
3. two workers: two client threads send the batches one after another.
4. memory: resident set size of each server worker after its run, and its peak.

"Cache on" is measured after one warm-up pass, so every reference is a cache hit, as
when a later epoch or another group meets the same reference. Latency is per 64-item
batch; completions per second is items divided by wall time. CPU ms per batch is the CPU
time of the scoring process (in-process) or of the server workers (HTTP): unlike wall
time, it does not grow with other load on the machine.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[4]
DEV_REPORTS = REPO.parent / "shared" / "data" / "iu_xray" / "reports_dev.csv"
SAMPLE_REPORTS = REPO / "tests" / "kg_reward" / "data" / "iu_reports_sample.csv"
BATCH_SIZE = 64
GROUP_SIZE = 8
COMPLETION_WORDS = 60
START_TIMEOUT_S = 120.0

# Goals of the service, checked against the measured figures.
MAX_HTTP_OVERHEAD = 0.20
MAX_P99_MS = 50.0
MAX_WORKER_RSS_MB = 300.0


@dataclass(frozen=True)
class Run:
    mode: str
    workers: int | None
    cache: bool
    latencies_ms: list[float]
    completions_per_s: float
    cpu_ms_per_batch: float
    worker_rss_mb: list[float]
    worker_peak_rss_mb: list[float]

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    default = DEV_REPORTS if DEV_REPORTS.is_file() else SAMPLE_REPORTS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--reports", type=Path, default=default, help="Reports CSV.")
    parser.add_argument(
        "--requests", type=int, default=100, help="Timed batches per configuration (default 100)."
    )
    parser.add_argument("--batches", type=int, default=8, help="Distinct batches (default 8).")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv if argv is not None else [])
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"## Service benchmark ({args.reports.name}, {args.requests} batches of {BATCH_SIZE})")

    # Step 1: data.
    batches = build_batches(read_sentences(args.reports), args.batches)
    words = statistics.mean(len(item["completion"].split()) for item in batches[0])
    print(f"completion length: {words:.0f} words on average (tags included)")

    # Steps 2-4: in-process beside one worker, then two workers, each with cache on and off.
    import kg_reward

    extractor = kg_reward.load()
    # As in the service: the scorer's reference cache is the only cache.
    extractor.cache_size = 0
    runs = []
    for cache in (True, False):
        runs.extend(run_paired(extractor, batches, args.requests, cache))
    for cache in (True, False):
        runs.append(run_concurrent(batches, args.requests, 2, cache))

    print_table(runs)
    print_goals(runs)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


def read_sentences(path: Path) -> list[list[str]]:
    """Return the sentences of each report (findings, then impression), without redactions."""
    reports = []
    with path.open(newline="", encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            text = f"{row.get('findings') or ''} {row.get('impression') or ''}"
            sentences = [
                sentence.strip()
                for sentence in re.split(r"(?<=\.)\s+", text)
                if len(sentence.split()) >= 3 and "XXXX" not in sentence
            ]
            if len(sentences) >= 3:
                reports.append(sentences)
    if len(reports) < GROUP_SIZE:
        raise SystemExit(f"{path} has fewer than {GROUP_SIZE} usable reports")
    return reports


def build_batches(reports: list[list[str]], count: int) -> list[list[dict[str, Any]]]:
    """Build ``count`` batches of 64 items, 8 completions per reference report."""
    rng = random.Random(13)
    batches = []
    for _ in range(count):
        batch = []
        for _ in range(BATCH_SIZE // GROUP_SIZE):
            own = rng.choice(reports)
            answer = rng.choice(["yes", "no"])
            reference = f"<think>{' '.join(own)}</think><answer>{answer}</answer>"
            for _ in range(GROUP_SIZE):
                rationale = compose_rationale(own, reports, rng)
                completion = (
                    f"<think>{rationale}</think><answer>{rng.choice(['yes', 'no'])}</answer>"
                )
                batch.append({"completion": completion, "reference": reference})
        batches.append(batch)
    return batches


def compose_rationale(own: list[str], reports: list[list[str]], rng: random.Random) -> str:
    """Return about 60 words: sentences of the own report, then of random other reports."""
    sentences = rng.sample(own, k=min(len(own), rng.randint(1, 3)))
    while sum(len(sentence.split()) for sentence in sentences) < COMPLETION_WORDS:
        sentences.append(rng.choice(rng.choice(reports)))
    words = " ".join(sentences).split()
    return " ".join(words[: COMPLETION_WORDS + 8])


def run_paired(
    extractor: Any, batches: list[list[dict[str, Any]]], requests: int, cache: bool
) -> list[Run]:
    """Time in-process scoring and a one-worker server alternately, batch by batch.

    Alternating puts both under the same load from other programs, which on a shared
    machine changes from second to second.
    """
    import httpx

    from kg_reward.scoring import RewardScorer
    from kg_schema.scoring import ScoreItem

    scorer = RewardScorer(extractor, cache_size=4096 if cache else 0)
    server = start_server(1, server_env(cache))
    local = Timings()
    remote = Timings()
    try:
        with httpx.Client(base_url=server.url, timeout=60.0) as client:
            for batch in batches:
                scorer.score([ScoreItem(**item) for item in batch])
                client.post("/score", json={"items": batch}).raise_for_status()

            for index in range(requests):
                batch = batches[index % len(batches)]
                with local.measure(time.process_time):
                    # Building the items is part of the work, as the service parses each body.
                    scorer.score([ScoreItem(**item) for item in batch])
                with remote.measure(server.worker_cpu_s):
                    client.post("/score", json={"items": batch}).raise_for_status()
        memory = server.worker_rss_mb(), server.worker_peak_rss_mb()
    finally:
        server.stop()
    return [local.run("in-process", None, cache, ([], [])), remote.run("HTTP", 1, cache, memory)]


def run_concurrent(
    batches: list[list[dict[str, Any]]], requests: int, workers: int, cache: bool
) -> Run:
    """Time a server with ``workers`` workers and as many client threads."""
    import httpx

    server = start_server(workers, server_env(cache))
    try:
        with httpx.Client(base_url=server.url, timeout=60.0) as warm:
            for batch in batches * workers:
                warm.post("/score", json={"items": batch}).raise_for_status()

        def send(thread: int) -> list[float]:
            latencies = []
            with httpx.Client(base_url=server.url, timeout=60.0) as client:
                for index in range(thread, requests, workers):
                    body = {"items": batches[index % len(batches)]}
                    began = time.perf_counter()
                    client.post("/score", json=body).raise_for_status()
                    latencies.append((time.perf_counter() - began) * 1000.0)
            return latencies

        cpu_before = server.worker_cpu_s()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            latencies = [value for values in pool.map(send, range(workers)) for value in values]
        elapsed = time.perf_counter() - started
        cpu_ms = (server.worker_cpu_s() - cpu_before) * 1000.0 / requests
        memory = server.worker_rss_mb(), server.worker_peak_rss_mb()
    finally:
        server.stop()
    throughput = requests * BATCH_SIZE / elapsed
    return Run("HTTP", workers, cache, latencies, throughput, cpu_ms, *memory)


class Timings:
    """Wall and CPU time of repeated calls; ``measure`` takes the CPU clock to read."""

    def __init__(self) -> None:
        self.wall_ms: list[float] = []
        self.cpu_ms: list[float] = []

    @contextmanager
    def measure(self, cpu_clock: Callable[[], float]) -> Iterator[None]:
        cpu_started, wall_started = cpu_clock(), time.perf_counter()
        yield
        self.wall_ms.append((time.perf_counter() - wall_started) * 1000.0)
        self.cpu_ms.append((cpu_clock() - cpu_started) * 1000.0)

    def run(
        self, mode: str, workers: int | None, cache: bool, memory: tuple[list[float], list[float]]
    ) -> Run:
        throughput = len(self.wall_ms) * BATCH_SIZE / (sum(self.wall_ms) / 1000.0)
        cpu_ms = statistics.mean(self.cpu_ms)
        return Run(mode, workers, cache, self.wall_ms, throughput, cpu_ms, *memory)


def server_env(cache: bool) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KG_REWARD_")}
    env["KG_REWARD_CACHE_SIZE"] = "4096" if cache else "0"
    env["KG_REWARD_LOG_LEVEL"] = "WARNING"
    return env


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str

    def workers(self) -> list[Any]:
        """Return the psutil processes that serve requests."""
        import psutil

        parent = psutil.Process(self.process.pid)
        # With one worker, uvicorn serves from the parent itself. With more, the workers are
        # children, beside the multiprocessing resource tracker, which loads no pipeline.
        children = [
            child
            for child in parent.children(recursive=True)
            if "resource_tracker" not in " ".join(child.cmdline())
        ]
        return children or [parent]

    def worker_rss_mb(self) -> list[float]:
        return [process.memory_info().rss / 2**20 for process in self.workers()]

    def worker_peak_rss_mb(self) -> list[float]:
        """Return each worker's peak RSS (VmHWM, Linux only; empty elsewhere)."""
        peaks = []
        for process in self.workers():
            status = Path(f"/proc/{process.pid}/status")
            if not status.is_file():
                return []
            match = re.search(r"^VmHWM:\s+(\d+) kB", status.read_text(), flags=re.MULTILINE)
            if match is None:
                return []
            peaks.append(int(match.group(1)) / 1024)
        return peaks

    def worker_cpu_s(self) -> float:
        """Return the CPU seconds (user and system) that the workers have used so far."""
        times = [process.cpu_times() for process in self.workers()]
        return sum(cpu.user + cpu.system for cpu in times)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)


def start_server(workers: int, env: dict[str, str]) -> Server:
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "kg_reward.cli", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers)]  # fmt: skip
    process = subprocess.Popen(command, env=env, start_new_session=True)
    server = Server(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{server.url}/readyz", timeout=1.0).status_code == 200:
                # Each worker loads its own pipeline; wait until all have (RSS settles).
                time.sleep(1.0 if workers > 1 else 0.0)
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    raise SystemExit(f"kg-reward serve with {workers} worker(s) did not become ready")


def print_table(runs: list[Run]) -> None:
    print()
    print(
        "| mode | workers | reference cache | completions/s | p50 ms | p99 ms "
        "| CPU ms/batch | RSS/worker MB | peak RSS/worker MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        rss = ", ".join(f"{value:.0f}" for value in run.worker_rss_mb) or "-"
        peak = ", ".join(f"{value:.0f}" for value in run.worker_peak_rss_mb) or "-"
        print(
            f"| {run.mode} | {run.workers or '-'} | {'on' if run.cache else 'off'} | "
            f"{run.completions_per_s:.0f} | {run.percentile(0.5):.1f} | "
            f"{run.percentile(0.99):.1f} | {run.cpu_ms_per_batch:.1f} | {rss} | {peak} |"
        )


def print_goals(runs: list[Run]) -> None:
    """Print each goal as met or missed; the figures depend on the machine, so none fails."""
    print()
    for cache in (True, False):
        local = next(r for r in runs if r.mode == "in-process" and r.cache == cache)
        remote = next(r for r in runs if r.mode == "HTTP" and r.workers == 1 and r.cache == cache)
        label = f"cache {'on' if cache else 'off'}"
        # Wall time includes the benchmark's own client, which shares the machine's cores;
        # server CPU time per batch does not depend on the machine's load.
        wall = remote.percentile(0.5) / local.percentile(0.5) - 1.0
        cpu = remote.cpu_ms_per_batch / local.cpu_ms_per_batch - 1.0
        target = f"<= {MAX_HTTP_OVERHEAD:.0%}"
        _goal(
            f"HTTP overhead, p50 wall time, {label}: {wall:+.0%}", wall <= MAX_HTTP_OVERHEAD, target
        )
        _goal(
            f"HTTP overhead, CPU per batch, {label}: {cpu:+.0%}", cpu <= MAX_HTTP_OVERHEAD, target
        )
    worst_p99 = max(run.percentile(0.99) for run in runs if run.mode == "HTTP")
    _goal(f"worst HTTP p99: {worst_p99:.1f} ms", worst_p99 < MAX_P99_MS, f"< {MAX_P99_MS:.0f} ms")
    worst_rss = max(value for run in runs for value in run.worker_rss_mb + run.worker_peak_rss_mb)
    _goal(
        f"largest worker RSS, current or peak: {worst_rss:.0f} MB",
        worst_rss < MAX_WORKER_RSS_MB,
        f"< {MAX_WORKER_RSS_MB:.0f} MB",
    )


def _goal(text: str, met: bool, target: str) -> None:
    print(f"- {text} (goal {target}): {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
