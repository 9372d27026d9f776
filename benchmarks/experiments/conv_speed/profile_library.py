"""Per-op time of the library's meta step (``library_step.py``'s arguments), from ``jax.profiler``."""
import collections, glob, gzip, json, os, shutil, sys
exec(open(os.path.join(os.path.dirname(__file__), "library_step.py")).read())
import jax.profiler
shutil.rmtree("/tmp/jaxmeta-trace", ignore_errors=True)
with jax.profiler.trace("/tmp/jaxmeta-trace", create_perfetto_trace=True):
    for _ in range(2):
        jax.block_until_ready(comp(state, tasks, k))
f = glob.glob("/tmp/jaxmeta-trace/**/*.trace.json.gz", recursive=True)[0]
ev = json.load(gzip.open(f))["traceEvents"]
tot = collections.Counter(); cnt = collections.Counter()
for e in ev:
    if e.get("ph") == "X" and "dur" in e:
        tot[e["name"]] += e["dur"]; cnt[e["name"]] += 1
for n, d in tot.most_common(45):
    print(f"{d/2e3:9.1f} ms  x{cnt[n]//2:5d}  {n[:100]}")
kinds = collections.Counter()
for n, d in tot.items():
    if not n.startswith(("$", "ThunkExecutor", "Slinky")):
        kinds[n.split(".")[0]] += d
print("by kind of op:")
for n, d in kinds.most_common(15):
    print(f"{d/2e3:9.1f} ms  {n}")
