"""What the benchmarks share: the synth field lists, and running a step in a child process
while sampling the memory of its process tree."""

from __future__ import annotations

import subprocess
import threading
import time

import psutil

from loganalyzer.synth.writers import PROTOCOL_FIELDS, TRACKING_FIELDS

TRACKING = TRACKING_FIELDS.split(",")
PROTOCOL = PROTOCOL_FIELDS.split(",")


def run_child(
    args: list[str], capture: bool = False, sample: bool = True
) -> tuple[int, float, int, bytes]:
    """Run ``args``; returns its exit code, wall seconds, peak memory (bytes) and stdout.

    Peak memory is the highest PSS (proportional set size) summed over the process tree: pages
    shared by forked workers are counted once, not once per process. Sampling costs about 8 ms
    of CPU per process every 0.1 s (reading /proc/PID/smaps), which slows what it measures, a
    tree of processes most: ``sample=False`` measures time alone (peak is then 0).
    """
    proc = psutil.Popen(args, stdout=subprocess.PIPE if capture else None)
    peak = 0

    def sample_memory() -> None:
        nonlocal peak
        while sample and proc.poll() is None:
            try:
                tree = [proc, *proc.children(recursive=True)]
                peak = max(peak, sum(p.memory_full_info().pss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.1)

    start = time.perf_counter()
    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    seconds = time.perf_counter() - start
    sampler.join()
    return proc.returncode, seconds, peak, out or b""
