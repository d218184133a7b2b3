"""What benchmarks share: the machine they ran on and a latency timer with percentiles."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict:
    """The machine a figure was measured on: CPU, cores usable, OS, Python, torch, GPU."""
    import torch

    info = {
        "host": platform.node(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def add_timing_arguments(parser, *, repeats: int, warmup: int) -> None:
    """The options every timing benchmark takes: repeats, warm-up, threads, device, seed,
    --json."""
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")


def device_sync(device) -> Callable[[], None]:
    """What waits for queued work on `device` (a torch.device): cuda synchronize, or nothing."""
    import torch

    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values, q in [0, 1]."""
    return sorted_values[min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))]


def latency_percentiles(latencies_ms: list[float]) -> dict[str, float | None]:
    """p50/p95/p99 of latencies, ms (None when there are none: nothing was planned)."""
    ordered = sorted(latencies_ms)
    return {
        q: (percentile(ordered, v) if ordered else None)
        for q, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
    }


def timeit(
    fn: Callable[[], object],
    repeats: int,
    warmup: int,
    sync: Callable[[], None] = lambda: None,
) -> dict:
    """Milliseconds per call of fn() over `repeats` calls after `warmup` calls: p50, p95, p99,
    min, mean. `sync` waits for queued device work (torch.cuda.synchronize on a GPU)."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return {
        "p50": statistics.median(times),
        "p95": percentile(times, 0.95),
        "p99": percentile(times, 0.99),
        "min": times[0],
        "mean": statistics.fmean(times),
    }
