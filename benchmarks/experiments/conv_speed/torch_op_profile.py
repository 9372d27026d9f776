"""Per-op time of the PyTorch side: ``torch_op_profile.py {omniglot,random} [by-shape]``.

Profiles one 5-way 1-shot meta step (32 tasks, 15 queries, one inner step at lr 0.4) of
``benchmarks/torch_maml.py``'s torch.func loop with ``torch.profiler``, on one meta-batch of real
Omniglot training tasks or of random images, and prints the ops by self time (``by-shape``: grouped
by input shapes, which separates the layers). Needs the comparison environment (``make compare-env``)
and, for ``omniglot``, the data (``JAXMETA_DATA``).
"""
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/
import torch_maml  # noqa: E402


def main():
    data, by_shape = sys.argv[1], "by-shape" in sys.argv[2:]
    torch.manual_seed(0)
    model = torch_maml.conv4(5)
    if data == "omniglot":
        tasks = torch_maml.omniglot_tasks(torch, 32, 5, 1, 15, 0)
    else:
        tasks = torch_maml.random_tasks(torch, 32, 5, 1, 15, torch.float32, torch.Generator().manual_seed(0))
    accumulate, _ = torch_maml.meta_gradient_fn("torchfunc", torch, torch.func, model, 1, 0.4)
    for _ in range(2):
        accumulate(tasks)
    start = time.perf_counter()
    accumulate(tasks)
    print(f"{data}: {time.perf_counter() - start:.3f} s per meta step (unprofiled)")
    with torch.profiler.profile(record_shapes=by_shape) as profile:
        accumulate(tasks)
    print(profile.key_averages(group_by_input_shape=by_shape).table(
        sort_by="self_cpu_time_total", row_limit=40, max_name_column_width=40, max_shapes_column_width=90))
    query = tasks[0][2]
    print(f"query images: mean {query.mean().item():.3f}, fraction exactly 0: {(query == 0).float().mean().item():.3f}")


if __name__ == "__main__":
    main()
