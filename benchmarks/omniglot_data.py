"""The Omniglot data layer's speed: loading the archives (cold and cached) and sampling tasks.

    python benchmarks/omniglot_data.py           # writes benchmarks/results/omniglot_data.{json,md}

Loading is timed once cold (into an empty temporary cache) and several
times warm. Sampling is timed for 5-way 1-shot 15-query tasks from the
1,100 training characters of the MAML split, on the device, inside ``jit``:
median tasks/s over repeated batches after compilation, with and without
per-task rotation, for float32 pixels in [0, 1] and for raw uint8 pixels.
The archives are found through ``JAXMETA_DATA`` (default ``../shared/data``).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from jaxmeta.data.episodes import EpisodeSampler  # noqa: E402
from jaxmeta.data.omniglot import load_omniglot, split_characters  # noqa: E402
from jaxmeta.data.paths import data_root  # noqa: E402


def time_loading(root: Path, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        data = load_omniglot(root, cache_dir=cache)
        cold = time.perf_counter() - start
        warm = []
        for _ in range(repeats):
            start = time.perf_counter()
            load_omniglot(root, cache_dir=cache)
            warm.append(time.perf_counter() - start)
    return {"first_load_seconds": cold, "cached_load_seconds_median": float(np.median(warm)),
            "characters": int(data.num_characters)}, data


def time_sampling(images: np.ndarray, batch_size: int, repeats: int, **episode) -> float:
    sampler = EpisodeSampler.create(images, batch_size, **episode)
    draw = jax.jit(lambda s, key: s(key))
    jax.block_until_ready(draw(sampler, jax.random.key(0)))
    seconds = []
    for i in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(draw(sampler, jax.random.key(i + 1)))
        seconds.append(time.perf_counter() - start)
    return batch_size / float(np.median(seconds))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=None, help="default: $JAXMETA_DATA/omniglot")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR)
    args = parser.parse_args(argv)
    root = args.root or data_root() / "omniglot"
    loading, data = time_loading(root, repeats=5)
    train = data.images[split_characters(data, "maml").train]
    rows = []
    for batch_size in args.batch_sizes:
        for rotate in (False, True):
            for dtype in ("float32", "uint8"):
                rate = time_sampling(train, batch_size, args.repeats, ways=5, shots=1, queries=15,
                                     rotate=rotate, dtype=dtype)
                rows.append({"batch_size": batch_size, "rotate": rotate, "dtype": dtype, "tasks_per_second": rate})
                print(f"batch {batch_size:4d} rotate={rotate!s:5s} {dtype:7s}: {rate:9,.0f} tasks/s", flush=True)
    summary = {"environment": common.environment(), "loading": loading, "sampling_5w1s15q": rows}
    lines = [
        "# Omniglot data layer: loading and task sampling",
        "",
        f"Loading all 1,623 characters from the official archives: first load (empty cache) "
        f"{loading['first_load_seconds']:.1f} s, cached load {loading['cached_load_seconds_median']:.2f} s "
        "(median of 5).",
        "",
        "Sampling 5-way 1-shot 15-query tasks from the 1,100 training characters, on the device inside `jit` "
        f"(median of {args.repeats} batches after compilation, {common.environment()['cpu_count']} CPU cores):",
        "",
        "| batch | rotation per class | pixels | tasks/s |",
        "|---|---|---|---|",
    ] + [f"| {r['batch_size']} | {'yes' if r['rotate'] else 'no'} | {r['dtype']} | {r['tasks_per_second']:,.0f} |"
         for r in rows]
    common.write_json(args.out / "omniglot_data.json", summary)
    common.write_atomically(args.out / "omniglot_data.md", "\n".join(lines) + "\n")
    print(f"first load {loading['first_load_seconds']:.1f} s, cached {loading['cached_load_seconds_median']:.2f} s; "
          f"wrote {args.out}/omniglot_data.json and .md")
    return summary


if __name__ == "__main__":
    main()
