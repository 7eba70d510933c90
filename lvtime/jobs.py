"""Concurrent lvtime processes for ``sweep --jobs N``: one device (or core share) each.

A job is a chain of lvtime commands (a configuration's finetune, then its ranking
forecast) run one after another in child processes. Each of the N slots owns a device:
on GPUs one visible device per slot (``CUDA_VISIBLE_DEVICES``), and on every machine an
equal share of the CPU cores (``OMP_NUM_THREADS``). The jobs share the ledger, whose lock
and reservations keep them inside the budget exactly as a sequential sweep. Children run
in their own session, so Ctrl-C reaches them once, from here: each gets one SIGTERM,
saves and settles as an interrupted ``lvtime finetune`` does, and this process waits for
all of them before it stops. If this process is killed outright, Linux sends each child
SIGTERM (they never train on unnoticed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lvtime.shell import command_line


@dataclass
class Job:
    name: str
    commands: list[list[str]]  # lvtime arguments, without the program name
    log: Path
    returncode: int | None = None


@dataclass
class _Running:
    job: Job
    proc: subprocess.Popen
    left: list[list[str]] = field(default_factory=list)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d for d in env.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def slot_env(slot: int, jobs: int, devices: list[str], cpus: int) -> dict[str, str]:
    """Environment of slot ``slot`` of ``jobs``: its GPU (if any) and its share of cores."""
    threads = str(max(1, cpus // jobs))
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    if devices:
        env["CUDA_VISIBLE_DEVICES"] = devices[slot % len(devices)]
    return env


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when the sweep that started it
    dies, even by ``kill -9`` (lvtime treats SIGTERM as Ctrl-C: it saves and settles).
    Elsewhere the child outlives a killed parent, and its run folder's lock tells a
    re-run that it is still going."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def child_options() -> dict:
    """Popen options of a job's process: its own session (Ctrl-C in the terminal reaches
    it through :func:`run` only), ended when this process dies."""
    return {"start_new_session": True, "preexec_fn": _die_with_parent if sys.platform == "linux" else None}


def _start(job: Job, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    job.log.parent.mkdir(parents=True, exist_ok=True)
    with open(job.log, "a") as log:
        log.write(f"$ {command_line(['lvtime', *args])}\n")
        log.flush()
        return subprocess.Popen(
            [sys.executable, "-m", "lvtime", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            **child_options(),
        )


def run(jobs: list[Job], n: int, devices: list[str], on_start=None, on_end=None, poll_s: float = 0.2) -> None:
    """Run ``jobs`` at most ``n`` at a time; each job's commands in order, stopping at the
    first that fails. After a failure no new job starts. Sets ``returncode`` (0 when all
    of a job's commands succeeded); Ctrl-C interrupts every running job, waits, re-raises."""
    waiting = list(jobs)
    running: dict[int, _Running] = {}
    cpus = cpu_count()
    try:
        while waiting or running:
            failed = any(j.returncode not in (None, 0) for j in jobs)
            for slot in range(n):
                if slot not in running and waiting and not failed:
                    job = waiting.pop(0)
                    if on_start:
                        on_start(job, slot)
                    running[slot] = _Running(job, _start(job, job.commands[0], slot_env(slot, n, devices, cpus)))
                    running[slot].left = job.commands[1:]
            if failed and not running:
                break
            time.sleep(poll_s)
            for slot, r in list(running.items()):
                rc = r.proc.poll()
                if rc is None:
                    continue
                if rc == 0 and r.left:
                    r.proc = _start(r.job, r.left.pop(0), slot_env(slot, n, devices, cpus))
                    continue
                r.job.returncode = rc
                del running[slot]
                if on_end:
                    on_end(r.job)
    except BaseException:
        _interrupt_and_wait([r.proc for r in running.values()])
        raise


def _interrupt_and_wait(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:  # SIGTERM, which lvtime treats as Ctrl-C: a child may have
            p.send_signal(signal.SIGTERM)  # inherited SIGINT ignored (a background sweep)
    for p in procs:
        while True:
            try:
                p.wait()
                break
            except KeyboardInterrupt:  # a second Ctrl-C: the children are already stopping
                continue
