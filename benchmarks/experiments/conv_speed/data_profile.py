"""Per-op time of the library's 5-way meta step on random images and on real Omniglot tasks, side by side.

    JAXMETA_DATA=../shared/data .venv/bin/python benchmarks/experiments/conv_speed/data_profile.py [REPEATS]

One compiled step (CPU path: im2col, task_chunk=1), timed and profiled on both meta-batches in one
process; prints tasks/s for each and the ops whose time differs most.
"""
import collections, glob, gzip, json, os, shutil, sys, time

import jax, jax.numpy as jnp, numpy as np, optax

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))  # benchmarks/: common
import common  # noqa: E402
import jaxmeta  # noqa: E402
from jaxmeta.models import Conv4, functional  # noqa: E402

repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
model = Conv4(num_classes=5, conv="im2col")
learner = jaxmeta.maml(jaxmeta.classification_loss(functional(model)), inner_lr=0.4, inner_steps=1)
opt = optax.adam(1e-3)
state = jaxmeta.init_state(learner, opt, model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"])
step = jaxmeta.make_meta_step(learner, opt, task_chunk=1)
batches = {"random": common.random_omniglot_tasks(0, 32, ways=5, shots=1, queries=15),
           "omniglot": common.omniglot_meta_batch(0, 32, ways=5, shots=1, queries=15)}
batches = {name: jax.device_put(b) for name, b in batches.items()}
key = jax.random.key(1)
compiled = step.lower(state, batches["random"], key).compile()
for b in batches.values():
    jax.block_until_ready(compiled(state, b, key))
times = {name: [] for name in batches}
for _ in range(repeats):  # interleaved
    for name, b in batches.items():
        t = time.perf_counter(); jax.block_until_ready(compiled(state, b, key)); times[name].append(time.perf_counter() - t)
for name, ts in times.items():
    print(f"{name}: {np.median(ts):.3f} s/step, {32 / np.median(ts):.2f} tasks/s ({', '.join(f'{t:.3f}' for t in ts)})")


def profile(tasks):
    trace_dir = "/tmp/jaxmeta-data-trace"
    shutil.rmtree(trace_dir, ignore_errors=True)
    with jax.profiler.trace(trace_dir):
        for _ in range(2):
            jax.block_until_ready(compiled(state, tasks, key))
    events = json.load(gzip.open(glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)[0]))["traceEvents"]
    total = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and "dur" in e:
            total[e["name"]] += e["dur"] / 2e3
    return total


ops = {name: profile(b) for name, b in batches.items()}
names = set(ops["random"]) | set(ops["omniglot"])
diff = sorted(names, key=lambda n: -abs(ops["omniglot"][n] - ops["random"][n]))
print(f"{'random ms':>10} {'omniglot ms':>12}  op (largest differences)")
for n in diff[:30]:
    print(f"{ops['random'][n]:10.1f} {ops['omniglot'][n]:12.1f}  {n[:110]}")
