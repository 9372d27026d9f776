"""Shared by the profiling probes: time a callable under ``jax.profiler`` and print the per-op totals."""
import collections, glob, gzip, json, shutil

import jax
import jax.profiler


def print_op_profile(run, repeats: int = 2, top: int = 45, trace_dir: str = "/tmp/jaxmeta-trace") -> None:
    """Run ``run()`` ``repeats`` times under the profiler; print ms per run for the ``top`` ops and by kind."""
    shutil.rmtree(trace_dir, ignore_errors=True)
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
        for _ in range(repeats):
            jax.block_until_ready(run())
    events = json.load(gzip.open(glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)[0]))["traceEvents"]
    total, count = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("ph") == "X" and "dur" in e:
            total[e["name"]] += e["dur"]; count[e["name"]] += 1
    for name, d in total.most_common(top):
        print(f"{d / repeats / 1e3:9.1f} ms  x{count[name] // repeats:5d}  {name[:100]}")
    kinds = collections.Counter()
    for name, d in total.items():
        if not name.startswith(("$", "ThunkExecutor", "Slinky", "PjitFunction")):
            kinds[name.split(".")[0]] += d
    print("by kind of op:")
    for name, d in kinds.most_common(15):
        print(f"{d / repeats / 1e3:9.1f} ms  {name}")
