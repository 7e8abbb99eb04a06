"""The end-to-end demo: reward service, synthesis, SFT, mining, GRPO, evaluation, report.

    policy-trainer demo --scale small            # what `make demo` runs
    policy-trainer demo --reward-url http://reward-lb:8080   # against a running service

Every stage runs as its own ``policy-trainer <stage> --config FILE`` subprocess, with its
YAML config in ``<run>/configs/`` and its output in ``<run>/logs/<stage>.log``. Subprocesses
were chosen over in-process calls for three reasons. A stage can be rerun alone with the
recorded config. A crash in native code (torch, tokenizers) cannot take the demo and its
service down. The memory of one stage is returned before the next starts. A stage that
exits non-zero stops the demo with one line naming the stage and its log file.

When no ``--reward-url`` is given, the demo starts ``kg-reward serve`` on 127.0.0.1 on a
free port and stops it when the demo ends, fails or is interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import yaml

from policy_trainer.demo_plan import CONFIGURED_STAGES, SCALES, Scale, Stage, plan
from policy_trainer.errors import PolicyTrainerError

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


class DemoError(PolicyTrainerError):
    """A demo stage failed; the message names the stage and its log file."""

    def __init__(self, stage: str, log_path: Path, detail: str):
        super().__init__(f"demo failed at stage '{stage}' ({detail}); see {log_path}")
        self.stage = stage
        self.log_path = log_path


@dataclass
class DemoOptions:
    """Settings of one demo run (the command-line flags of ``policy-trainer demo``)."""

    scale: str = "small"
    runs_dir: Path = Path("runs")
    reward_url: str | None = None
    workers: int = 2
    ready_timeout: float = 300.0
    reports: Path | None = None
    overrides: Sequence[str] = ()
    echo: bool = True
    log_level: str = "INFO"


@dataclass
class RunPaths:
    """The layout of one run folder."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def configs(self) -> Path:
        return self.root / "configs"

    def log(self, stage: str) -> Path:
        return self.logs / f"{stage}.log"


@dataclass
class StageTimer:
    """Wall-clock seconds per finished stage, in the order they ran."""

    seconds: dict[str, float] = field(default_factory=dict)

    def record(self, stage: str, started: float) -> float:
        elapsed = time.monotonic() - started
        self.seconds[stage] = elapsed
        return elapsed


# --- the reward service -------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class RewardService:
    """A ``kg-reward serve`` subprocess on 127.0.0.1, in its own process group.

    The process group lets ``stop`` end uvicorn's worker processes with their parent, and
    keeps a Ctrl-C in the terminal from reaching the service before the demo stops it.
    """

    def __init__(self, log_path: Path, *, workers: int, host: str = "127.0.0.1"):
        self.log_path = log_path
        self.workers = workers
        self.host = host
        self.port = free_port(host)
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        command = [
            sys.executable, "-m", "kg_reward.cli", "serve", "--host", self.host,
            "--port", str(self.port), "--workers", str(self.workers),
        ]
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        logger.info("started kg_reward service (pid %d) on %s", self.process.pid, self.url)

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, grace_seconds: float = 20.0) -> None:
        """Stop the service with SIGTERM, then SIGKILL after ``grace_seconds``."""
        process = self.process
        if process is not None and process.poll() is not None:
            # The master is gone; SIGKILL reaches any worker it left behind in its group.
            _signal_group(process, signal.SIGKILL)
        elif process is not None:
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                logger.warning("kg_reward service (pid %d) ignored SIGTERM for %.0f s; killing",
                               process.pid, grace_seconds)
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=grace_seconds)
            logger.info("stopped kg_reward service (pid %d)", process.pid)
        if self._log is not None:
            self._log.close()
            self._log = None


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def wait_until_ready(url: str, timeout: float, alive: Callable[[], bool] = lambda: True
                     ) -> float:
    """Poll ``GET <url>/readyz`` until it returns 200; return the seconds waited.

    Raises TimeoutError after ``timeout`` seconds, and RuntimeError as soon as ``alive()``
    turns false (the service process exited).
    """
    import httpx

    started = time.monotonic()
    deadline = started + timeout
    # trust_env=False: a proxy from HTTP_PROXY must not sit between the demo and its service.
    with httpx.Client(timeout=httpx.Timeout(5.0), trust_env=False) as client:
        while True:
            if not alive():
                raise RuntimeError("the service process exited before it was ready")
            try:
                if client.get(f"{url.rstrip('/')}/readyz").status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{url}/readyz did not return 200 within {timeout:.0f} s")
            time.sleep(0.5)


# --- running one stage --------------------------------------------------------------


def run_stage(name: str, command: Sequence[str], log_path: Path, *, echo: bool,
              env: Mapping[str, str] | None = None) -> None:
    """Run ``command`` with its output in ``log_path`` (and on stderr when ``echo``).

    Raises DemoError when it exits non-zero. On KeyboardInterrupt the stage's process
    group gets SIGTERM (SIGKILL after 20 s) before the interrupt propagates.
    """
    with log_path.open("ab") as log:
        log.write(f"$ {' '.join(command)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=dict(env) if env is not None else None,
            start_new_session=True,
        )
        try:
            _copy_output(process, log, echo)
            code = process.wait()
        except BaseException:
            _stop_stage(process)
            raise
    if code != 0:
        raise DemoError(name, log_path, f"exit code {code}")


def _copy_output(process: subprocess.Popen[bytes], log: IO[bytes], echo: bool) -> None:
    # Raw chunks, not lines, so that progress bars redrawn with \r show up as they happen.
    assert process.stdout is not None
    stream = process.stdout.fileno()
    while True:
        chunk = os.read(stream, 65536)
        if not chunk:
            return
        log.write(chunk)
        log.flush()
        if echo:
            sys.stderr.buffer.write(chunk)
            sys.stderr.buffer.flush()


def _stop_stage(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    _signal_group(process, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.wait(timeout=20)


def stage_command(stage: str, config_path: Path, log_level: str) -> list[str]:
    return [sys.executable, "-m", "policy_trainer.cli", "--log-level", log_level, stage,
            "--config", str(config_path)]


def stage_env(reward_url: str) -> dict[str, str]:
    """Return the environment of the stage processes."""
    env = dict(os.environ)
    env.update({
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # Clients built from the environment (kg_reward.client.ClientSettings) find the
        # service too, not only those that read the URL from the stage config.
        "KG_REWARD_CLIENT_URLS": reward_url,
    })
    return env


# --- stage configs ------------------------------------------------------------------


def parse_overrides(overrides: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Parse ``stage.field=value`` strings; values are YAML, as for the stage flags."""
    from policy_trainer.errors import ConfigError

    parsed: dict[str, dict[str, Any]] = {}
    for text in overrides:
        key, separator, raw = text.partition("=")
        stage, dot, name = key.partition(".")
        if not separator or not dot or not stage or not name:
            raise ConfigError(
                f"--set {text!r} is not of the form stage.field=value, "
                "for example --set grpo.max_steps=20"
            )
        if stage not in CONFIGURED_STAGES:
            raise ConfigError(
                f"--set {text!r}: unknown stage {stage!r}; use one of "
                f"{', '.join(CONFIGURED_STAGES)}"
            )
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise ConfigError(f"--set {text!r}: the value is not valid YAML: {error}") from error
        parsed.setdefault(stage, {})[name] = value
    return parsed


def write_stage_config(paths: RunPaths, name: str, values: Mapping[str, Any]) -> Path:
    """Write one stage's YAML config into the run folder and return its path."""
    path = paths.configs / f"{name}.yaml"
    plain = {key: str(value) if isinstance(value, Path) else value
             for key, value in values.items()}
    path.write_text(yaml.safe_dump(plain, sort_keys=False), encoding="utf-8")
    return path


# --- the pipeline -------------------------------------------------------------------


def new_run_dir(runs_dir: Path) -> RunPaths:
    """Create ``<runs_dir>/<timestamp>/`` with its logs and configs folders."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    root = Path(runs_dir) / stamp
    suffix = 1
    while root.exists():
        root = Path(runs_dir) / f"{stamp}-{suffix}"
        suffix += 1
    paths = RunPaths(root)
    paths.logs.mkdir(parents=True)
    paths.configs.mkdir()
    return paths


def run_demo(options: DemoOptions, progress: Progress = logger.info) -> Path:
    """Run the whole demo and return the path of ``report.md``.

    Raises DemoError naming the failed stage; the service this call started is stopped
    in every case, including KeyboardInterrupt.
    """
    scale = SCALES[options.scale]
    overrides = parse_overrides(options.overrides)
    paths = new_run_dir(options.runs_dir)
    progress(f"demo at {scale.name} scale in {paths.root}")
    timer = StageTimer()

    service: RewardService | None = None
    try:
        if options.reward_url is None:
            service = RewardService(paths.log("kg_reward"), workers=options.workers)
            reward_url = _start_service(service, options.ready_timeout, timer, progress)
        else:
            reward_url = options.reward_url.rstrip("/")
            _wait_external(reward_url, paths, options.ready_timeout, timer, progress)
        (paths.root / "service.json").write_text(json.dumps({
            "url": reward_url, "pid": service.process.pid if service and service.process
            else None}), encoding="utf-8")

        pipeline = Pipeline(paths, scale, options, reward_url, overrides, timer, progress,
                            service)
        report = pipeline.run()
    finally:
        if service is not None:
            service.stop()
            progress("kg_reward service stopped")
        (paths.root / "timings.json").write_text(json.dumps(timer.seconds, indent=2),
                                                 encoding="utf-8")
    progress(f"demo finished in {sum(timer.seconds.values()):.0f} s; report: {report}")
    return report


def _start_service(service: RewardService, timeout: float, timer: StageTimer,
                   progress: Progress) -> str:
    started = time.monotonic()
    progress(f"[service] starting kg-reward serve --workers {service.workers} on "
             f"{service.url} (log: {service.log_path})")
    service.start()
    try:
        wait_until_ready(service.url, timeout, alive=lambda: service.exit_code() is None)
    except (TimeoutError, RuntimeError) as error:
        raise DemoError("service", service.log_path, str(error)) from error
    progress(f"[service] ready after {timer.record('service', started):.0f} s")
    return service.url


def _wait_external(url: str, paths: RunPaths, timeout: float, timer: StageTimer,
                   progress: Progress) -> None:
    started = time.monotonic()
    progress(f"[service] waiting for {url}/readyz")
    try:
        wait_until_ready(url, timeout)
    except TimeoutError as error:
        paths.log("service").write_text(f"{error}\n", encoding="utf-8")
        raise DemoError("service", paths.log("service"), str(error)) from error
    progress(f"[service] ready after {timer.record('service', started):.0f} s")


@dataclass
class Pipeline:
    """The stages after the service is up, each a subprocess with its own config and log."""

    paths: RunPaths
    scale: Scale
    options: DemoOptions
    reward_url: str
    overrides: Mapping[str, Mapping[str, Any]]
    timer: StageTimer
    progress: Progress
    service: RewardService | None = None

    def run(self) -> Path:
        stages = plan(self.paths.root, self.scale, self.reward_url, self.options.reports,
                      sys.executable)
        total = len(stages) + 1
        for index, stage in enumerate(stages, start=1):
            self._run(index, total, stage)

        self.progress(f"[{total}/{total}] report")
        started = time.monotonic()
        try:
            report = build_report(self.paths, self.scale, self.reward_url, self.timer.seconds)
        except Exception as error:
            logger.exception("building the report failed")
            with self.paths.log("report").open("a", encoding="utf-8") as log:
                log.write(f"{type(error).__name__}: {error}\n")
            raise DemoError("report", self.paths.log("report"),
                            f"{type(error).__name__}: {error}") from error
        self.timer.record("report", started)
        return report

    def _run(self, index: int, total: int, stage: Stage) -> None:
        log_path = self.paths.log(stage.name)
        if stage.command is None:
            values = {**stage.config, **self.overrides.get(stage.config_name, {})}
            config_path = write_stage_config(self.paths, stage.name, values)
            command = stage_command(stage.command_name, config_path, self.options.log_level)
        else:
            command = list(stage.command)
        self.progress(f"[{index}/{total}] {stage.name} (log: {log_path})")
        started = time.monotonic()
        run_stage(stage.name, command, log_path, echo=self.options.echo,
                  env=stage_env(self.reward_url))
        self._check_service()
        self.progress(f"[{index}/{total}] {stage.name} done in "
                      f"{self.timer.record(stage.name, started):.0f} s")


    def _check_service(self) -> None:
        # Without this check a crashed service would only show up as missing rewards.
        if self.service is not None and self.service.exit_code() is not None:
            raise DemoError("service", self.service.log_path,
                            f"the kg_reward service exited with code {self.service.exit_code()}")


def build_report(paths: RunPaths, scale: Scale, reward_url: str,
                 stage_seconds: Mapping[str, float]) -> Path:
    """Re-score GRPO's completions with explanations and write ``report.md``."""
    from kg_reward.client import RewardClient
    from policy_trainer import report

    completions = report.read_jsonl(paths.root / "grpo" / "completions.jsonl")
    records = report.read_jsonl(paths.root / "mine" / "mined.jsonl")
    references = report.completion_references(completions, records)
    grpo_config = yaml.safe_load((paths.root / "grpo" / "config.yaml").read_text("utf-8"))
    with RewardClient(reward_url, max_items_per_request=32) as client:
        step_matching = report.match_counts_per_step(
            completions, references, client, reward_options=grpo_config.get("reward_options"))

    inputs = report.ReportInputs(
        run_dir=paths.root,
        scale=scale.name,
        reward_url=reward_url,
        stage_seconds=dict(stage_seconds),
        sft_metrics=_read_json(paths.root / "eval" / "sft.json"),
        grpo_metrics=_read_json(paths.root / "eval" / "grpo.json"),
        completions=completions,
        step_matching=step_matching,
        settings=_report_settings(paths),
    )
    return report.write_report(inputs)


# Config fields shown in the report's settings table, per stage config file.
REPORT_SETTINGS = {
    "synthesize": ("max_reports",),
    "sft": ("model_path", "max_steps", "num_train_epochs", "per_device_train_batch_size",
            "learning_rate"),
    "mine": ("sample_fraction", "sigma", "sizes"),
    "grpo": ("max_steps", "num_generations", "per_device_train_batch_size",
             "max_completion_length", "beta", "reward_weights", "learning_rate"),
    "evaluate-grpo": ("limit", "max_new_tokens"),
}


def _report_settings(paths: RunPaths) -> dict[str, dict[str, Any]]:
    settings: dict[str, dict[str, Any]] = {}
    for stage, names in REPORT_SETTINGS.items():
        path = paths.configs / f"{stage}.yaml"
        if path.is_file():
            values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            settings[stage] = {name: values[name] for name in names if name in values}
    return settings


def _read_json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))
