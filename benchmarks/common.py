"""What every benchmark script shares, so that each driver reads as a list of what it measures.

* the host's facts (:func:`environment`, :func:`hardware`) named in every record;
* timing (:func:`compile_and_time`, :func:`time_compiled`, :class:`ChunkTimer`), the host's matrix-product
  ceiling (:func:`matmul_ceiling`), XLA's FLOP count and memory of a compiled step (:func:`cost_flops`,
  :func:`memory_bytes`, :func:`meta_step_flops`, :func:`scan_unrolled` and :func:`loop_flops` for counting
  loop bodies more than once);
* measurements in separate processes (:func:`worker_command`, :func:`run_json`), and a list of them run
  with a progress bar, resumable and saved after each (:class:`Job`, :func:`run_jobs`);
* result files written atomically (:func:`write_json`, :func:`read_json`) and their formatting
  (:func:`markdown_table`, :func:`mean_ci`, :func:`pooled_median`).
"""

import contextlib
import dataclasses
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


def count(number: int, noun: str) -> str:
    """``number`` and ``noun``, plural unless the number is one.

    >>> count(1, "step"), count(10, "step")
    ('1 step', '10 steps')
    """
    return f"{number} {noun}{'' if number == 1 else 's'}"


def markdown_table(header: list[str], rows: list[list]) -> list[str]:
    """The lines of a Markdown table; cells are written with ``str``.

    >>> markdown_table(["method", "s / step"], [["maml", 0.5], ["fomaml", 0.25]])
    ['| method | s / step |', '|---|---|', '| maml | 0.5 |', '| fomaml | 0.25 |']
    """
    if any(len(row) != len(header) for row in rows):
        raise ValueError(f"every row needs {len(header)} cells, one per column of {header}")
    return [f"| {' | '.join(header)} |", "|" + "---|" * len(header),
            *(f"| {' | '.join(map(str, row))} |" for row in rows)]


def pooled_median(records: list[dict], field: str = "seconds_per_step") -> tuple[float, int]:
    """The median of the lists ``record[field]`` pooled over ``records`` (e.g. every timed step of every
    round), and how many values it is over.

    >>> pooled_median([{"seconds_per_step": [3.0, 1.0]}, {"seconds_per_step": [2.0]}])
    (2.0, 3)
    """
    values = [value for record in records for value in record[field]]
    return statistics.median(values), len(values)


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


def call_seconds(function: Callable, *arguments, reps: int, warmup: int = 1) -> list[float]:
    """Seconds of each of ``reps`` calls of ``function(*arguments)``, each waited for until its result is ready,
    after ``warmup`` untimed calls (the first compiles a jitted function)."""
    for _ in range(warmup):
        jax.block_until_ready(function(*arguments))
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        jax.block_until_ready(function(*arguments))
        seconds.append(time.perf_counter() - start)
    return seconds


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


def meta_step_flops(build: Callable, conv: str, task_chunk: int | None, tasks, key, compiled=None) -> dict:
    """XLA's FLOP count of a meta step of ``meta_batch`` tasks, also when it runs its tasks in a loop.

    ``build(conv, task_chunk)`` returns ``(state, step)``: a jaxmeta meta step with that convolution and
    ``task_chunk`` (``None``: every task under ``vmap``), e.g. from :func:`jaxmeta.make_meta_step`;
    ``compiled`` is the step as timed, where there is one. Two things hide FLOPs from the cost analysis:
    a ``lax.map`` over tasks (``task_chunk`` set) is a loop whose body is counted once, and oneDNN's
    convolutions are custom calls it cannot see into. So the count is of the same step with
    ``conv="im2col"`` and the tasks under ``vmap``, compiled for its cost analysis and never run.

    Returns ``step`` (the whole meta step), ``per_task``, ``as_timed`` (the step with the timed
    ``task_chunk``), ``loop_body`` (the same, when it is a loop) and ``source``; on an accelerator a
    ``warning``, since library convolutions (cuDNN) are not counted there.
    """
    meta_batch = jax.tree.leaves(tasks)[0].shape[0]
    counted_conv = "im2col" if conv == "onednn" else conv

    def count(task_chunk):
        state, step = build(counted_conv, task_chunk)
        return cost_flops(step.lower(state, tasks, key).compile())

    as_timed = cost_flops(compiled) if compiled is not None and counted_conv == conv else count(task_chunk)
    vmapped = as_timed if task_chunk is None else count(None)
    flops = {"step": vmapped, "per_task": vmapped / meta_batch, "as_timed": as_timed,
             "loop_body": None if task_chunk is None else as_timed,
             "source": f"XLA cost analysis of the step compiled with task_chunk=None (vmap over tasks), "
                       f"conv={counted_conv!r}"}
    if jax.default_backend() != "cpu":  # seen on an H100: 8.6 GFLOP counted for the CPU's 176.2
        flops["warning"] = (f"on {jax.default_backend()} the cost analysis misses the convolutions that run as "
                            "library calls (cuDNN): an undercount; count on the CPU")
    return flops


def matmul_ceiling(shape: tuple[int, int, int], reps: int) -> dict:
    """Median seconds and GFLOP/s of a jitted float32 ``[M x K] @ [K x N]`` product: the host's ceiling."""
    import jax.numpy as jnp

    m, k, n = shape
    a = jax.random.normal(jax.random.key(0), (m, k), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (k, n), jnp.float32)
    seconds = call_seconds(jax.jit(jnp.matmul).lower(a, b).compile(), a, b, reps=reps)
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


@dataclasses.dataclass(frozen=True)
class Job:
    """One measurement for :func:`run_jobs`: ``command`` prints one JSON record (see :func:`run_json`).

    Attributes:
      kind: the list of the results its record joins (``"costs"``, ``"torch"``, ...).
      key: what identifies it among the records of its kind: a record kept from an earlier run under the
        same ``(kind, *key)`` is reused instead of measuring again.
      command: the worker's command line, e.g. from :func:`worker_command`.
      what: names it in the progress bar and in errors.
      labels: merged into its record.
      library: a library the worker needs that may not be installed (it then exits with
        :data:`MISSING_EXIT_CODE`): the later jobs of the same library are skipped.
      required: a failure stops the run; otherwise it is recorded in ``"failures"`` and the run goes on
        (e.g. a configuration that runs out of memory).
    """

    kind: str
    key: tuple
    command: list[str]
    what: str
    labels: dict = dataclasses.field(default_factory=dict)
    library: str | None = None
    required: bool = False


def run_jobs(jobs: list[Job], *, previous: dict[tuple, dict] | None = None,
             save: Callable[[dict], None] = lambda results: None, describe: Callable[[dict], str] | None = None,
             desc: str = "measuring", progress: bool = True) -> dict:
    """Run each job's worker process in turn, with a progress bar; its records by kind.

    Args:
      jobs: the measurements, in the order they run.
      previous: records of an earlier run, by ``(kind, *key)``: a job whose record is there is not run again
        (resuming a killed run), and those no job asks for are kept in the results all the same.
      save: called after every measurement with everything known so far, so that a run that is killed
        loses at most the measurement in progress.
      describe: a line to print about each new record (e.g. its time per step).
      desc: the progress bar's title; ``progress=False`` hides the bar.

    Returns:
      ``{kind: [records], ..., "missing": {library: error}, "failures": [{**labels, "what", "error"}]}``;
      each new record carries its job's labels and ``measured_at``.
    """
    from tqdm import tqdm

    results = {"missing": {}, "failures": []}
    for job in jobs:
        results.setdefault(job.kind, [])
    pending = dict(previous or {})

    def snapshot() -> dict:
        out = {name: list(value) if isinstance(value, list) else dict(value) for name, value in results.items()}
        for (kind, *_), record in pending.items():
            out.setdefault(kind, []).append(record)
        return out

    with tqdm(total=len(jobs), desc=desc, disable=not progress, dynamic_ncols=True) as bar:
        for job in jobs:
            bar.set_postfix_str(job.what)
            if (job.kind, *job.key) in pending:
                results.setdefault(job.kind, []).append(pending.pop((job.kind, *job.key)))
            elif job.library is None or job.library not in results["missing"]:
                try:
                    code, record = run_json(job.command, job.what)
                except WorkerFailed as error:
                    if job.required:
                        raise
                    results["failures"].append({**job.labels, "what": job.what, "error": str(error)})
                    bar.write(f"{job.what}: FAILED\n{error}")
                else:
                    if code == MISSING_EXIT_CODE:
                        results["missing"][job.library or job.what] = record.get("error", "cannot be imported")
                        bar.write(f"{job.what}: not installed ({results['missing'][job.library or job.what]})")
                    else:
                        record = {**record, **job.labels, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
                        results[job.kind].append(record)
                        if describe is not None:
                            bar.write(f"{job.what}: {describe(record)}")
                save(snapshot())
            bar.update()
    return snapshot()
