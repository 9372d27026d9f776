"""Training metrics as JSON lines, and the learning-curve plot drawn from them.

Each line is one record with a ``step`` (the meta-step count after it) and a
``kind``: ``"train"`` (means over the meta steps since the previous record)
or ``"validation"`` (held-out tasks). When a run resumes from a checkpoint,
the records after the checkpoint's step are dropped, so the file reads as if
the run had never stopped.
"""

import json
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from jaxmeta.training.checkpoint import write_text_atomically


class MetricsLog:
    """Append-only JSONL file of training records.

    Args:
      path: the JSONL file.
      writable: whether this process writes it. In a run over several
        processes (hosts) only one of them should (``jax.process_index() == 0``);
        the others read what it wrote, and their ``write`` and
        ``truncate_after`` do nothing.

    Example:
      >>> import tempfile, pathlib
      >>> log = MetricsLog(pathlib.Path(tempfile.mkdtemp()) / "metrics.jsonl")
      >>> log.write({"step": 10, "kind": "train", "loss": 0.5})
      >>> log.write({"step": 20, "kind": "train", "loss": 0.25})
      >>> log.truncate_after(10)
      >>> [r["loss"] for r in log.read()]
      [0.5]
    """

    def __init__(self, path, writable: bool = True):
        self.path = Path(path)
        self.writable = writable

    def read(self) -> list[dict]:
        """Every complete record (a line cut short by a crash is skipped)."""
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def truncate_after(self, step: int | None) -> None:
        """Keep only the records up to ``step`` (all records are dropped when ``step`` is None)."""
        if not self.writable:
            return
        kept = [r for r in self.read() if step is not None and r.get("step", 0) <= step]
        write_text_atomically(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: Mapping[str, Any]) -> None:
        if not self.writable:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(dict(record)) + "\n")
            handle.flush()


def plot_learning_curve(records: list[dict], path, *, title: str = "meta-training") -> None:
    """Query loss and accuracy against meta-steps: training (per record) and validation, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in records if r.get("kind") == "train"]
    validation = [r for r in records if r.get("kind") == "validation"]
    metrics = [m for m in ("loss", "accuracy") if any(m in r for r in train + validation)]
    figure, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.8), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        for rows, label, style in ((train, "training tasks", "-"), (validation, "validation tasks", "o-")):
            rows = [r for r in rows if metric in r]
            if rows:
                axis.plot([r["step"] for r in rows], [r[metric] for r in rows], style, label=label, markersize=3)
        axis.set_xlabel("meta-step")
        axis.set_ylabel(f"query {metric} after adaptation")
        if metric == "loss" and all(r[metric] > 0 for r in train + validation if metric in r):
            axis.set_yscale("log")  # losses that can be negative (a policy's surrogate) stay linear
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(path).with_name(f".{Path(path).name}.tmp.png")
    figure.savefig(temporary, dpi=110)
    plt.close(figure)
    temporary.replace(path)
