"""What a training run writes as it goes: the CSV logs (cut back to a checkpoint's step on resume) and the
progress bar."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


class CsvLog:
    """`log.csv` / `eval.csv`: one row per call, columns fixed by the first row (or the existing header)."""

    def __init__(self, path: Path):
        self.path, self.columns = path, None
        if path.is_file():
            with path.open() as f:
                header = f.readline().strip()
            self.columns = header.split(",") if header else None

    def write(self, row: dict[str, Any]) -> None:
        if self.columns is None:
            self.columns = list(row)
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(self.columns)
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([row.get(c, "") for c in self.columns])

    def cut_after(self, step: int) -> None:
        """Drop the rows past `step` (a killed run logged steps its last checkpoint does not hold; the resumed
        run logs them again)."""
        if not self.path.is_file():
            return
        with self.path.open(newline="") as f:
            rows = list(csv.reader(f))
        if not rows or "step" not in rows[0]:
            return
        col = rows[0].index("step")
        kept = [rows[0]] + [r for r in rows[1:] if len(r) > col and r[col].isdigit() and int(r[col]) <= step]
        if len(kept) == len(rows):
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", newline="") as f:
            csv.writer(f).writerows(kept)
        tmp.replace(self.path)


class Progress:
    """A rich progress bar with loss and samples/s; silent when disabled (non-main processes)."""

    def __init__(self, total: int, done: int, enabled: bool):
        self.enabled = enabled
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]} samples/s"),
                                TimeRemainingColumn(), transient=False)
            self.task = self.bar.add_task("train", total=total, completed=done, loss="-", speed="-")

    def __enter__(self):
        if self.enabled:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.__exit__(*exc)

    def update(self, step: int, loss: float, speed: float) -> None:
        if self.enabled:
            self.bar.update(self.task, completed=step, loss=f"{loss:.4f}", speed=f"{speed:.1f}")

    def note(self, step: int, metrics: dict[str, float]) -> None:
        if self.enabled:
            text = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            self.bar.console.print(f"eval @ step {step}: {text}")


__all__ = ["CsvLog", "Progress"]
