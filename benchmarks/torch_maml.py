"""Seconds per meta step of MAML (second or first order) in PyTorch, for a side-by-side speed comparison.

The model is the conv-4 of Finn et al. (2017) for Omniglot: four blocks of
Conv2d(3x3, W filters, padding 1) -> BatchNorm2d(W, batch statistics, affine)
-> ReLU -> MaxPool2d(2) take a 1x28x28 image to W features, then Linear(W, ways);
W = 64 (``--width``).
The data is Omniglot-shaped and random: float32 NCHW images with values in
[0, 1], labels ``arange(ways)`` repeated per shot (support) or per query. One
meta-batch is drawn once before timing and reused, so that only the meta step
is timed. A meta step adapts to each task with ``--inner-steps`` steps of SGD
on the support loss, keeping the graph (second order; with ``--first-order``
the inner gradients are treated as constants, FOMAML), accumulates the
gradient of the mean query loss over the meta-batch, and takes one Adam(1e-3)
step. Three implementations of the same step:

    learn2learn  l2l.algorithms.MAML(model, lr, first_order=...); per task
                 learner = maml.clone() and learner.adapt(support_loss), as in
                 learn2learn's own Omniglot example
    higher       higher.innerloop_ctx(model, SGD, copy_initial_weights=False)
                 with its differentiable SGD (first order: the gradients are
                 detached in its grad_callback)
    torchfunc    torch.func.functional_call with torch.autograd.grad(...,
                 create_graph=not first_order), a Python loop over tasks

It prints one JSON line to stdout: the implementation, the versions, the
setting, the time of each timed meta step, their median, tasks per second
(meta-batch / median) and the process's peak RSS. Warm-up steps are not
timed. If the implementation's library cannot be imported, it prints
``{"impl": ..., "error": ...}`` and exits with code 3.

    python benchmarks/torch_maml.py --impl higher --meta-batch 32 --ways 5 --shots 1 \\
        --queries 15 --inner-steps 1 --inner-lr 0.4 --reps 10 --warmup 2
    python benchmarks/torch_maml.py --check   # the three give the same meta-gradient

``--check`` runs each importable implementation on a tiny setting (meta-batch
2, 2 ways, 1 shot, 2 queries, 2 inner steps) in float64 from the same initial
weights and data, and compares their meta-gradients, second and first order,
with torchfunc's (exit 1 if any differs by more than 1e-6 relative, or if
the two orders agree). Install the libraries with ``make compare-env``.
"""

import argparse
import copy
import importlib.metadata
import json
import os
import resource
import statistics
import sys
import time

import numpy as np

IMPLS = ("learn2learn", "higher", "torchfunc")
META_LR = 1e-3
CHECK_TOLERANCE = 1e-6


def import_library(impl):
    """Import torch and the implementation's library; return (torch, library, library version)."""
    import torch

    if impl == "learn2learn":
        import learn2learn

        return torch, learn2learn, learn2learn.__version__
    if impl == "higher":
        import higher

        return torch, higher, importlib.metadata.version("higher")
    if impl == "torchfunc":
        import torch.func

        return torch, torch.func, torch.__version__
    raise ValueError(f"unknown implementation {impl!r}")


def conv4(ways, width=64):
    """The conv-4 of Finn et al. for 1x28x28 inputs, BatchNorm on batch statistics."""
    from torch import nn

    layers = []
    channels = 1
    for _ in range(4):
        layers += [
            nn.Conv2d(channels, width, kernel_size=3, padding=1),
            nn.BatchNorm2d(width, affine=True, track_running_stats=False),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        channels = width
    layers += [nn.Flatten(), nn.Linear(width, ways)]  # 28 -> 14 -> 7 -> 3 -> 1: width features
    return nn.Sequential(*layers)


def random_tasks(torch, meta_batch, ways, shots, queries, dtype, generator):
    """A meta-batch of random Omniglot-shaped tasks: a list of (x_support, y_support, x_query, y_query)."""
    tasks = []
    for _ in range(meta_batch):
        x_support = torch.rand(ways * shots, 1, 28, 28, generator=generator, dtype=dtype)
        x_query = torch.rand(ways * queries, 1, 28, 28, generator=generator, dtype=dtype)
        tasks.append((x_support, torch.arange(ways).repeat(shots), x_query, torch.arange(ways).repeat(queries)))
    return tasks


def as_torch_tasks(torch, batch, dtype=None):
    """A numpy ``Task`` meta-batch (``uint8 [B, n, H, W, C]`` images) as ``random_tasks`` gives tasks.

    Images become NCHW in [0, 1] (``dtype``, default float32), labels int64.
    """
    dtype = torch.float32 if dtype is None else dtype
    images = lambda x: torch.from_numpy(np.asarray(x)).to(dtype).div(255).permute(0, 3, 1, 2)  # noqa: E731
    labels = lambda y: torch.from_numpy(np.asarray(y)).long()  # noqa: E731
    (x_support, y_support), (x_query, y_query) = batch.support, batch.query
    return [(images(x_support[t]), labels(y_support[t]), images(x_query[t]), labels(y_query[t]))
            for t in range(len(x_support))]


def omniglot_tasks(torch, meta_batch, ways, shots, queries, seed):
    """A meta-batch of real Omniglot tasks (``common.omniglot_meta_batch``) as ``random_tasks`` gives them."""
    from common import omniglot_meta_batch

    return as_torch_tasks(torch, omniglot_meta_batch(seed, meta_batch, ways=ways, shots=shots, queries=queries))


def meta_gradient_fn(impl, torch, library, model, inner_steps, inner_lr, first_order=False):
    """A function of a meta-batch that adds the gradient of the mean query loss to ``model``'s ``.grad``.

    Returns (accumulate, parameters): ``parameters`` are what the outer optimizer updates.
    """
    cross_entropy = torch.nn.functional.cross_entropy

    if impl == "learn2learn":
        maml = library.algorithms.MAML(model, lr=inner_lr, first_order=first_order)

        def accumulate(tasks):
            for x_support, y_support, x_query, y_query in tasks:
                learner = maml.clone()
                for _ in range(inner_steps):
                    learner.adapt(cross_entropy(learner(x_support), y_support))
                (cross_entropy(learner(x_query), y_query) / len(tasks)).backward()

        return accumulate, list(maml.parameters())

    if impl == "higher":
        inner_optimizer = torch.optim.SGD(model.parameters(), lr=inner_lr)
        constants = (lambda grads: [g.detach() for g in grads]) if first_order else None

        def accumulate(tasks):
            for x_support, y_support, x_query, y_query in tasks:
                with library.innerloop_ctx(model, inner_optimizer, copy_initial_weights=False) as (fmodel, diffopt):
                    for _ in range(inner_steps):
                        diffopt.step(cross_entropy(fmodel(x_support), y_support), grad_callback=constants)
                    (cross_entropy(fmodel(x_query), y_query) / len(tasks)).backward()

        return accumulate, list(model.parameters())

    if impl == "torchfunc":
        functional_call = library.functional_call

        def accumulate(tasks):
            for x_support, y_support, x_query, y_query in tasks:
                fast = dict(model.named_parameters())
                for _ in range(inner_steps):
                    loss = cross_entropy(functional_call(model, fast, (x_support,)), y_support)
                    grads = torch.autograd.grad(loss, list(fast.values()), create_graph=not first_order)
                    fast = {name: w - inner_lr * g for (name, w), g in zip(fast.items(), grads)}
                (cross_entropy(functional_call(model, fast, (x_query,)), y_query) / len(tasks)).backward()

        return accumulate, list(model.parameters())

    raise ValueError(f"unknown implementation {impl!r}")


def time_meta_steps(impl, args):
    """Time ``args.reps`` meta steps after ``args.warmup`` untimed ones; return the JSON record."""
    torch, library, library_version = import_library(impl)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    model = conv4(args.ways, args.width)
    if args.data == "omniglot":
        tasks = omniglot_tasks(torch, args.meta_batch, args.ways, args.shots, args.queries, args.seed)
    else:
        tasks = random_tasks(torch, args.meta_batch, args.ways, args.shots, args.queries, torch.float32, generator)
    accumulate, parameters = meta_gradient_fn(impl, torch, library, model, args.inner_steps, args.inner_lr,
                                              first_order=args.first_order)
    optimizer = torch.optim.Adam(parameters, lr=META_LR)

    def meta_step():
        optimizer.zero_grad()
        accumulate(tasks)
        optimizer.step()

    for _ in range(args.warmup):
        meta_step()
    seconds = []
    for _ in range(args.reps):
        start = time.perf_counter()
        meta_step()
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    return {
        "impl": impl,
        "torch": torch.__version__,
        "library_version": library_version,
        "threads": torch.get_num_threads(),
        "setting": {
            "meta_batch": args.meta_batch,
            "ways": args.ways,
            "shots": args.shots,
            "queries": args.queries,
            "inner_steps": args.inner_steps,
            "inner_lr": args.inner_lr,
            "first_order": args.first_order,
            "width": args.width,
            "meta_optimizer": f"Adam({META_LR})",
            "dtype": "float32",
            "data": args.data,
            "device": "cpu",
            "warmup": args.warmup,
            "reps": args.reps,
        },
        "seconds_per_step": seconds,
        "median_seconds": median,
        "tasks_per_second": args.meta_batch / median,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def check_meta_gradients(args):
    """Compare both orders' meta-gradients of the importable implementations in float64; return (record, passed)."""
    import torch

    torch.set_num_threads(args.threads)
    meta_batch, ways, shots, queries, inner_steps, inner_lr = 2, 2, 1, 2, 2, 0.4
    torch.manual_seed(args.seed)
    initial = conv4(ways).double()
    tasks = random_tasks(
        torch, meta_batch, ways, shots, queries, torch.float64, torch.Generator().manual_seed(args.seed)
    )
    gradients, skipped = {}, {}
    for impl in IMPLS:
        try:
            _, library, _ = import_library(impl)
        except Exception as error:  # noqa: BLE001 - any import failure means "not available"
            skipped[impl] = f"{type(error).__name__}: {error}"
            continue
        for order, first_order in (("second", False), ("first", True)):
            model = copy.deepcopy(initial)
            accumulate, _ = meta_gradient_fn(impl, torch, library, model, inner_steps, inner_lr, first_order)
            accumulate(tasks)
            gradients[impl, order] = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    differences = {}
    for (impl, order), grads in gradients.items():
        reference = gradients["torchfunc", order]
        if impl == "torchfunc":
            continue
        # Per parameter tensor: the largest difference relative to the tensor's largest reference entry.
        # The conv biases sit before a BatchNorm, so their gradient is zero in exact arithmetic and
        # rounding noise in float64: their scale is floored at 1e-9 of the largest gradient entry.
        floor = 1e-9 * max(ref.abs().max().item() for ref in reference.values())
        differences[f"{impl} {order} order"] = max(
            (grads[name] - ref).abs().max().item() / max(ref.abs().max().item(), floor)
            for name, ref in reference.items()
        )
    # The two orders differ: otherwise the first-order switch did nothing.
    orders_differ = max((gradients["torchfunc", "second"][name] - g).abs().max().item()
                        for name, g in gradients["torchfunc", "first"].items()) > 1e-6
    passed = len(differences) > 0 and all(d <= CHECK_TOLERANCE for d in differences.values()) and orders_differ
    record = {
        "check": "second- and first-order meta-gradients vs torchfunc's, float64",
        "setting": {
            "meta_batch": meta_batch,
            "ways": ways,
            "shots": shots,
            "queries": queries,
            "inner_steps": inner_steps,
            "inner_lr": inner_lr,
        },
        "torch": torch.__version__,
        "max_relative_difference": differences,
        "orders_differ": orders_differ,
        "tolerance": CHECK_TOLERANCE,
        "passed": passed,
    }
    if skipped:
        record["skipped"] = skipped
    return record, passed


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", choices=IMPLS, default="torchfunc")
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--queries", type=int, default=15, help="query examples per class")
    parser.add_argument("--inner-steps", type=int, default=1)
    parser.add_argument("--inner-lr", type=float, default=0.4)
    parser.add_argument("--first-order", action="store_true", help="FOMAML: the inner gradients as constants")
    parser.add_argument("--width", type=int, default=64, help="filters per convolution")
    parser.add_argument("--reps", type=int, default=10, help="timed meta steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed meta steps first")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", choices=("random", "omniglot"), default="random",
                        help="random Omniglot-shaped images, or one meta-batch of real Omniglot training tasks "
                             "($JAXMETA_DATA/omniglot; needs JAX for the sampler)")
    parser.add_argument("--check", action="store_true", help="compare the meta-gradients of the three")
    args = parser.parse_args(argv)
    if min(args.meta_batch, args.ways, args.shots, args.queries, args.inner_steps, args.reps, args.threads,
           args.width) < 1:
        parser.error("--meta-batch, --ways, --shots, --queries, --inner-steps, --reps, --threads and --width "
                     "must be >= 1")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.check:
        record, passed = check_meta_gradients(args)
        print(json.dumps(record), flush=True)
        return 0 if passed else 1
    try:
        import_library(args.impl)
    except Exception as error:  # noqa: BLE001 - report any import failure to the caller
        print(json.dumps({"impl": args.impl, "error": f"{type(error).__name__}: {error}"}), flush=True)
        return 3
    print(json.dumps(time_meta_steps(args.impl, args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
