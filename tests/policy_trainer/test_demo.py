"""policy-trainer demo end to end at the tiny scale, and how it fails.

The tiny scale builds a tiny local model (policy_trainer.tiny), synthesizes questions from
40 of the Indiana University reports, and runs a few steps of each stage against a real
kg_reward service on 127.0.0.1. It checks the wiring and the report, not learning.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

DEMO_TIMEOUT_S = 900
PLOTS = ("sft_vs_grpo.png", "rewards_per_step.png", "precision_recall_per_step.png")
RATE_METRICS = ("answer_accuracy", "mean_entity_reward", "mean_relation_reward")


@dataclass
class DemoRun:
    returncode: int
    stdout: str
    stderr: str
    run_dir: Path


def run_demo_cli(runs_dir: Path, *extra: str, timeout: float = DEMO_TIMEOUT_S) -> DemoRun:
    """Run `policy-trainer demo --scale tiny` in a subprocess, as `make demo` does."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DEMO_SCALE": "tiny"}
    result = subprocess.run(
        [sys.executable, "-m", "policy_trainer.cli", "demo", "--runs-dir", str(runs_dir),
         "--workers", "1", "--quiet", *extra],
        capture_output=True, text=True, timeout=timeout, env=env,
    )
    run_dirs = sorted(path for path in runs_dir.iterdir() if path.is_dir())
    assert len(run_dirs) == 1, f"expected one run folder, got {run_dirs}\n{result.stderr}"
    return DemoRun(result.returncode, result.stdout, result.stderr, run_dirs[0])


def results_table(report: str) -> dict[str, tuple[str, str, str]]:
    """Parse the results table of report.md into {metric: (sft, grpo, change)}."""
    section = report.split("## Results on the held-out test split", 1)[1]
    rows = {}
    for line in section.strip().splitlines():
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] in ("metric", "---") or set(cells[0]) == {"-"}:
            continue
        rows[cells[0]] = (cells[1], cells[2], cells[3])
    return rows


def assert_service_stopped(run_dir: Path) -> None:
    service = json.loads((run_dir / "service.json").read_text())
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{service['url']}/healthz", timeout=5)
    with pytest.raises(ProcessLookupError):
        os.kill(service["pid"], 0)


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    return run_demo_cli(tmp_path_factory.mktemp("runs"))


@pytest.mark.slow
def test_demo_tiny_scale_succeeds(tiny_demo: DemoRun) -> None:
    assert tiny_demo.returncode == 0, tiny_demo.stderr[-3000:]
    assert tiny_demo.stdout.strip() == str(tiny_demo.run_dir / "report.md")


@pytest.mark.slow
def test_demo_report_table_holds_numbers(tiny_demo: DemoRun) -> None:
    rows = results_table((tiny_demo.run_dir / "report.md").read_text())
    for metric in RATE_METRICS:
        sft, grpo, _ = rows[metric]
        assert 0.0 <= float(sft) <= 1.0, (metric, sft)
        assert 0.0 <= float(grpo) <= 1.0, (metric, grpo)


@pytest.mark.slow
def test_demo_report_plots_are_valid_png(tiny_demo: DemoRun) -> None:
    report = (tiny_demo.run_dir / "report.md").read_text()
    for name in PLOTS:
        path = tiny_demo.run_dir / "plots" / name
        assert path.stat().st_size > 1000, name
        with Image.open(path) as image:
            assert image.format == "PNG"
            image.verify()
        assert f"(plots/{name})" in report


@pytest.mark.slow
def test_demo_records_configs_logs_and_timings(tiny_demo: DemoRun) -> None:
    run_dir = tiny_demo.run_dir
    for stage in ("synthesize", "sft", "mine", "grpo", "evaluate-sft", "evaluate-grpo"):
        assert (run_dir / "configs" / f"{stage}.yaml").is_file(), stage
        assert (run_dir / "logs" / f"{stage}.log").stat().st_size > 0, stage
    timings = json.loads((run_dir / "timings.json").read_text())
    assert timings["grpo"] > 0
    report = (run_dir / "report.md").read_text()
    assert re.search(r"\| total \| \d+ \|", report)
    assert re.search(r"\| grpo \| max_steps=3, num_generations=2", report)


@pytest.mark.slow
def test_demo_stops_service_after_success(tiny_demo: DemoRun) -> None:
    assert_service_stopped(tiny_demo.run_dir)


@pytest.mark.slow
def test_demo_failed_stage_names_stage_and_log(tmp_path: Path) -> None:
    # An unknown field makes the synthesize stage exit 2 right after the service is ready.
    demo = run_demo_cli(tmp_path, "--set", "synthesize.no_such_field=1", timeout=300)

    log_path = demo.run_dir / "logs" / "synthesize.log"
    last_line = demo.stderr.strip().splitlines()[-1]
    assert demo.returncode == 1
    assert last_line == (f"policy-trainer demo: error: demo failed at stage 'synthesize' "
                         f"(exit code 2); see {log_path}")
    assert "no_such_field" in log_path.read_text()
    assert_service_stopped(demo.run_dir)


@pytest.mark.slow
def test_demo_sigterm_stops_stage_and_service(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "policy_trainer.cli", "demo", "--scale", "tiny", "--runs-dir",
         str(tmp_path), "--workers", "1", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        deadline = time.monotonic() + 300
        while not list(tmp_path.glob("*/service.json")):
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the service did not become ready"
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)

    assert process.returncode == 130
    assert "interrupted" in stderr.strip().splitlines()[-1]
    assert_service_stopped(next(tmp_path.glob("*")))
