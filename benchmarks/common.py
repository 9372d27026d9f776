"""What every benchmark script shares, so that each driver reads as a list of what it measures.

* the host's facts (:func:`environment`, :func:`hardware`) named in every record;
* timing (:func:`compile_and_time`, :func:`time_compiled`, :class:`ChunkTimer`), the host's matrix-product
  ceiling (:func:`matmul_ceiling`), XLA's FLOP count and memory of a compiled step (:func:`cost_flops`,
  :func:`memory_bytes`, :func:`scan_unrolled` for counting loop bodies more than once);
* measurements in separate processes (:func:`worker_command`, :func:`run_json`);
* result files written atomically (:func:`write_json`, :func:`read_json`) and their formatting.
"""

import contextlib
import json
import os
import statistics
import sys
import platform
import subprocess
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxmeta.training.checkpoint import write_text_atomically

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TORCH_SCRIPT = Path(__file__).resolve().parent / "torch_maml.py"
"""The PyTorch side of the speed comparisons (learn2learn, higher, torch.func)."""
MISSING_EXIT_CODE = 3
"""The exit code of :data:`TORCH_SCRIPT` when the library it is asked for is not installed."""


class ChunkTimer:
    """A ``fit`` callback that records when each chunk of meta steps finished."""

    def __init__(self):
        self.start = time.perf_counter()
        self.stamps: list[float] = []
        self.sizes: list[int] = []

    def __call__(self, state, metrics) -> None:
        self.stamps.append(time.perf_counter())
        self.sizes.append(len(metrics["loss"]))

    def steps_per_second(self) -> float:
        """Median rate over the chunks after the first (which includes compilation)."""
        if len(self.stamps) < 2:
            return float("nan")
        durations = np.diff(self.stamps)
        return float(np.median(np.asarray(self.sizes[1:]) / durations))

    def first_chunk_seconds(self) -> float:
        return self.stamps[0] - self.start if self.stamps else float("nan")


def environment() -> dict[str, Any]:
    """The facts a reader needs to compare timings: machine, backend, versions."""
    import flax
    import optax

    return {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def cpu_model() -> str:
    """The processor's name from ``/proc/cpuinfo`` (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(environment: dict) -> str:
    """The processor or accelerator a result ran on, for a results table's row.

    >>> hardware({"backend": "cpu", "cpu_count": 2, "cpu_model": "Intel(R) Xeon(R) Processor"})
    'Intel(R) Xeon(R) Processor, 2 cores'
    >>> hardware({"backend": "cpu", "cpu_count": 2})
    'CPU, 2 cores (model not recorded)'
    >>> hardware({"backend": "gpu", "device_kind": "NVIDIA H100 80GB HBM3"})
    'NVIDIA H100 80GB HBM3'
    """
    if environment["backend"] != "cpu":
        return environment.get("device_kind") or environment["backend"].upper()
    cores = f"{environment['cpu_count']} cores"
    if "cpu_model" in environment:
        return f"{environment['cpu_model']}, {cores}"
    return f"CPU, {cores} (model not recorded)"


write_atomically = write_text_atomically


def write_json(path: Path, data: Any) -> None:
    write_atomically(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON in ``path``, or ``default`` when there is no such file."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else default


def mean_ci(mean: float, ci: float, digits: int = 2) -> str:
    """``"0.53 ± 0.09"``."""
    return f"{mean:.{digits}f} ± {ci:.{digits}f}"


def random_omniglot_tasks(seed: int, meta_batch: int, *, ways: int, shots: int, queries: int):
    """A batch of Omniglot-shaped tasks of random ``uint8`` 28x28 images, for timing (labels ``0..ways-1``)."""
    from jaxmeta import Task

    rng = np.random.default_rng(seed)
    labels = lambda n: np.tile(np.arange(ways, dtype=np.int32), (meta_batch, n))  # noqa: E731
    images = lambda n: rng.integers(0, 256, (meta_batch, ways * n, 28, 28, 1), dtype=np.uint8)  # noqa: E731
    support = (images(shots), labels(shots))
    return Task(support, (images(queries), labels(queries)))


def omniglot_training_sampler(meta_batch: int, *, ways: int, shots: int, queries: int, data=None):
    """The ``EpisodeSampler`` of ``omniglot.py``'s training tasks: MAML split, random rotations, ``uint8`` images.

    ``data`` (``load_omniglot``'s result) is read from ``$JAXMETA_DATA/omniglot`` (or its cache) when not given.
    """
    from jaxmeta.data.episodes import EpisodeSampler
    from jaxmeta.data.omniglot import load_omniglot, split_characters
    from jaxmeta.data.paths import data_root

    data = load_omniglot(data_root() / "omniglot") if data is None else data
    train = data.images[split_characters(data, "maml", seed=0).train]
    return EpisodeSampler.create(train, meta_batch, ways=ways, shots=shots, queries=queries, rotate=True,
                                 dtype="uint8")


def omniglot_meta_batch(seed: int, meta_batch: int, *, ways: int, shots: int, queries: int, data=None):
    """One meta-batch of real Omniglot training tasks (:func:`omniglot_training_sampler`) as numpy arrays.

    The same ``Task`` layout as :func:`random_omniglot_tasks`.
    """
    sampler = omniglot_training_sampler(meta_batch, ways=ways, shots=shots, queries=queries, data=data)
    return jax.device_get(sampler(jax.random.key(seed)))


def use_host_devices(count: int) -> None:
    """Ask JAX for ``count`` CPU devices (``jax_num_cpu_devices``; other platforms ignore it).

    It takes effect only before JAX starts its backend; called later (a caller's process), it changes
    nothing, and ``jaxmeta.distributed.task_mesh`` says if there are too few devices.
    """
    if count > 1:
        try:
            jax.config.update("jax_num_cpu_devices", count)
        except RuntimeError:
            pass


def compile_and_time(step, state, tasks, key, *, reps: int, warmup: int = 1):
    """Compile ``step`` for these arguments, run it ``warmup`` times, then time ``reps`` runs.

    Returns ``(compiled, compile_seconds, seconds_per_run, state, metrics)``, with the state and metrics
    of the last run.
    """
    start = time.perf_counter()
    compiled = step.lower(state, tasks, key).compile()
    compile_seconds = time.perf_counter() - start
    seconds, state, metrics = time_compiled(compiled, state, tasks, key, reps=reps, warmup=warmup)
    return compiled, compile_seconds, seconds, state, metrics


def time_compiled(compiled, state, tasks, key, *, reps: int, warmup: int = 1):
    """Run a compiled step ``warmup`` times, then time ``reps`` runs: ``(seconds_per_run, state, metrics)``."""
    metrics = None
    for _ in range(warmup):
        state, metrics = jax.block_until_ready(compiled(state, tasks, key))
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        state, metrics = jax.block_until_ready(compiled(state, tasks, key))
        seconds.append(time.perf_counter() - start)
    return seconds, state, metrics


# ----------------------------------------------------------------------------------------------
# Measurements in worker processes: each prints one JSON line on stdout.
# ----------------------------------------------------------------------------------------------

class WorkerFailed(RuntimeError):
    """A worker process exited with an error or printed no JSON record."""


def run_json(command: list, what: str) -> tuple[int, dict]:
    """Run ``command`` from the repository root; its exit code and the last JSON line of its stdout.

    :data:`MISSING_EXIT_CODE` (a library that is not installed) is returned, not raised; any other
    failure raises :class:`WorkerFailed` with the tail of the worker's output, naming ``what``.
    """
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    record = None
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            try:
                record = json.loads(line)
                break
            except json.JSONDecodeError:
                pass
    if record is None or (done.returncode != 0 and done.returncode != MISSING_EXIT_CODE):
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise WorkerFailed(f"{what} failed (exit code {done.returncode}):\n{tail}")
    return done.returncode, record


def setting_arguments(setting: dict) -> list:
    """The command-line arguments of one MAML setting, as the jaxmeta and PyTorch workers take them."""
    return ["--meta-batch", str(setting["meta_batch"]), "--ways", str(setting["ways"]),
            "--shots", str(setting["shots"]), "--queries", str(setting["queries"]),
            "--inner-steps", str(setting["inner_steps"]), "--inner-lr", str(setting["inner_lr"])]


def cost_flops(compiled) -> float:
    """The FLOPs of a compiled computation by XLA's cost analysis (NaN when it does not count them)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older jax: one dict per device
        analysis = analysis[0]
    return float(analysis.get("flops", float("nan")))


def memory_bytes(compiled) -> dict[str, int]:
    """XLA's memory analysis of a compiled computation, in bytes: ``argument``, ``output``, ``temp``,
    ``generated_code`` and ``step`` (the first three together); empty where the backend gives none."""
    analysis = compiled.memory_analysis()
    if analysis is None:
        return {}
    fields = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes",
              "generated_code_size_in_bytes")
    sizes = {f.replace("_size_in_bytes", ""): int(getattr(analysis, f, 0) or 0) for f in fields}
    sizes["step"] = sizes["argument"] + sizes["output"] + sizes["temp"]
    return sizes


@contextlib.contextmanager
def scan_unrolled():
    """Within the block, every ``jax.lax.scan`` traced is fully unrolled (this process only; undone on exit).

    XLA's cost analysis counts a loop body once; unrolled, each iteration counts.
    """
    scan = jax.lax.scan
    jax.lax.scan = lambda *args, **kwargs: scan(*args, **{**kwargs, "unroll": True})
    try:
        yield
    finally:
        jax.lax.scan = scan


def loop_flops(count: Callable[[int], float], steps: int) -> dict[str, float]:
    r"""FLOPs of a computation with a ``steps``-iteration loop whose iterations all do the same work, from XLA's
    counts of the computation compiled with the loop fully unrolled at 1 and 2 iterations (``count(k)``, e.g.
    under :func:`scan_unrolled`): :math:`F_1 + (k - 1)(F_2 - F_1)`, without compiling ``steps`` iterations.

    >>> loop_flops(lambda k: 100.0 + 30.0 * k, 50)
    {'flops': 1600.0, 'flops_first_step': 130.0, 'flops_per_further_step': 30.0}
    """
    counts = {k: count(k) for k in sorted({1, min(2, steps)})}
    per_step = counts.get(2, counts[1]) - counts[1]
    return {"flops": counts[1] + (steps - 1) * per_step, "flops_first_step": counts[1],
            "flops_per_further_step": per_step}


def matmul_ceiling(shape: tuple[int, int, int], reps: int) -> dict:
    """Median seconds and GFLOP/s of a jitted float32 ``[M x K] @ [K x N]`` product: the host's ceiling."""
    import jax.numpy as jnp

    m, k, n = shape
    a = jax.random.normal(jax.random.key(0), (m, k), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (k, n), jnp.float32)
    product = jax.jit(jnp.matmul).lower(a, b).compile()
    jax.block_until_ready(product(a, b))
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        jax.block_until_ready(product(a, b))
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    flop = 2.0 * m * k * n
    return {"impl": "matmul", "shape": [m, k, n], "flop": flop, "seconds": seconds, "median_seconds": median,
            "gflops_per_second": flop / median / 1e9}


def worker_command(script: str | Path, kind: str, **options) -> list[str]:
    """The command that runs ``script --worker kind`` with ``options`` as flags (``inner_steps=5`` ->
    ``--inner-steps 5``; ``True`` -> a bare flag; ``False`` and ``None`` -> left out; a list -> its items).

    >>> worker_command("b.py", "cost", inner_steps=5, flops=True, seed=None, methods=["maml", "fomaml"])[2:]
    ['--worker', 'cost', '--inner-steps', '5', '--flops', '--methods', 'maml', 'fomaml']
    """
    command = [sys.executable, str(Path(script).resolve()), "--worker", kind]
    for name, value in options.items():
        flag = f"--{name.replace('_', '-')}"
        if value is True:
            command.append(flag)
        elif isinstance(value, (list, tuple)):
            command += [flag, *map(str, value)]
        elif value is not False and value is not None:
            command += [flag, str(value)]
    return command
