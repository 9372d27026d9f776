import sys, glob, gzip, json, collections
sys.argv = ["proto.py", sys.argv[1], sys.argv[2], "2"]
exec(open(__import__("os").path.join(__import__("os").path.dirname(__file__), "variants.py")).read())
import jax.profiler, os, shutil
shutil.rmtree("/tmp/jaxmeta-trace", ignore_errors=True)
with jax.profiler.trace("/tmp/jaxmeta-trace", create_perfetto_trace=True):
    for _ in range(2):
        jax.block_until_ready(comp(p, xs, ys, xq, yq))
f = glob.glob("/tmp/jaxmeta-trace/**/*.trace.json.gz", recursive=True)[0]
ev = json.load(gzip.open(f))["traceEvents"]
tot = collections.Counter(); cnt = collections.Counter()
for e in ev:
    if e.get("ph") == "X" and "dur" in e:
        tot[e["name"]] += e["dur"]; cnt[e["name"]] += 1
for n, d in tot.most_common(45):
    print(f"{d/2e3:9.1f} ms  x{cnt[n]//2:4d}  {n[:100]}")
