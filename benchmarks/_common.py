"""Shared bits of the benchmark scripts: where the data is, machine description, writing results tables."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"


def machine() -> str:
    """One line naming the CPU, core count, Python and torch versions."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"Python {platform.python_version()}")


def write_results(name: str, title: str, body: str) -> Path:
    """Write ``benchmarks/results/<name>.md`` with the command that made it, the date and the machine."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = "?"
    header = (f"# {title}\n\nCommand: `{command}`  \nDate: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
              f" (commit {commit})  \nMachine: {machine()}\n\n")
    path = RESULTS / f"{name}.md"
    path.write_text(header + body.rstrip() + "\n")
    print(path.read_text())
    return path


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub markdown table; floats are printed with 2 (or 4 below 1) decimals."""

    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def run_note() -> str:
    """How the run was made: niceness, torch threads and the machine's load, for the results table."""
    import torch

    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (f"\nRun at niceness {os.nice(0)} with {torch.get_num_threads()} torch thread(s); load average at the end "
            f"(1, 5, 15 min): {load}. The machine may be shared, so absolute times are noisy: compare the "
            "side-by-side ratios.\n")
