"""Overlay learning curves (``metrics.jsonl`` training records) of several Omniglot runs in one PNG.

    .venv/bin/python benchmarks/experiments/omniglot_learning/plot_curves.py \\
        benchmarks/experiments/omniglot_learning/curves/*.jsonl --out curves.png

Each file is one curve, labelled by its name; the y axis is the mean query
accuracy after adaptation over the logged window of meta-steps.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for path in args.files:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows = [r for r in rows if r.get("kind", "train") == "train"]
        axis.plot([r["step"] for r in rows], [100 * r["accuracy"] for r in rows], label=path.stem.replace("_", " "))
    axis.set_xlabel("meta-step")
    axis.set_ylabel("training query accuracy after 1 step (%)")
    axis.set_title("5-way 1-shot MAML on Omniglot: the same tasks, per meta-step")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
