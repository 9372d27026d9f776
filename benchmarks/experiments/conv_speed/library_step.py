import sys, time, jax, jax.numpy as jnp, numpy as np, optax
import jaxmeta
from jaxmeta.models import Conv4, functional
B, ways, shots, q, steps, lr = [float(a) if "." in a else int(a) for a in sys.argv[1:7]]
reps = int(sys.argv[7]) if len(sys.argv) > 7 else 3
conv = sys.argv[8] if len(sys.argv) > 8 else "xla"
chunk = int(sys.argv[9]) if len(sys.argv) > 9 and sys.argv[9] != "none" else None
model = Conv4(num_classes=ways, conv=conv)
loss_fn = jaxmeta.classification_loss(functional(model))
learner = jaxmeta.maml(loss_fn, inner_lr=lr, inner_steps=steps)
opt = optax.adam(1e-3)
params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
state = jaxmeta.init_state(learner, opt, params)
step = jaxmeta.make_meta_step(learner, opt, task_chunk=chunk)
k = jax.random.key(1)
xs = jax.random.randint(k, (B, ways*shots, 28, 28, 1), 0, 255).astype(jnp.uint8)
xq = jax.random.randint(k, (B, ways*q, 28, 28, 1), 0, 255).astype(jnp.uint8)
ys = jnp.tile(jnp.arange(ways), (B, shots)); yq = jnp.tile(jnp.arange(ways), (B, q))
tasks = jaxmeta.Task((xs, ys), (xq, yq))
t0 = time.perf_counter(); comp = step.lower(state, tasks, k).compile(); tc = time.perf_counter() - t0
ca = comp.cost_analysis(); ca = ca[0] if isinstance(ca, list) else ca
jax.block_until_ready(comp(state, tasks, k)); ts = []
for _ in range(reps):
    t = time.perf_counter(); jax.block_until_ready(comp(state, tasks, k)); ts.append(time.perf_counter() - t)
med = float(np.median(ts))
print(f"conv={conv} task_chunk={chunk} B={B} {ways}w{shots}s q={q} steps={steps}: compile {tc:.1f}s, {med:.3f} s/step, {B/med:.2f} tasks/s, {ca.get('flops',0)/1e9:.1f} GFLOP, {ca.get('flops',0)/med/1e9:.1f} GFLOP/s", flush=True)
