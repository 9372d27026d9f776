import time, jax, jax.numpy as jnp, numpy as np
def bench(f, *a, n=7):
    f = jax.jit(f); jax.block_until_ready(f(*a)); ts=[]
    for _ in range(n):
        t=time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter()-t)
    return np.median(ts)
k = jax.random.key(0)
M, K, N = 14700*4, 576, 64
a = jax.random.normal(k, (M, K)); w = jax.random.normal(k, (K, N)); g = jax.random.normal(k, (M, N))
fl = 2*M*K*N
for name, f, args in [
    ("f32 fwd", lambda a, w: a @ w, (a, w)),
    ("bf16 fwd", lambda a, w: jnp.dot(a, w, preferred_element_type=jnp.float32), (a.astype(jnp.bfloat16), w.astype(jnp.bfloat16))),
    ("f32 wgrad A^T g", lambda a, g: a.T @ g, (a, g)),
    ("f32 wgrad g^T A", lambda a, g: g.T @ a, (a, g)),
    ("bf16 wgrad", lambda a, g: jnp.dot(a.T, g, preferred_element_type=jnp.float32), (a.astype(jnp.bfloat16), g.astype(jnp.bfloat16))),
]:
    t = bench(f, *args); print(f"{name:18s} {t*1e3:7.1f} ms {fl/t/1e9:6.1f} GF/s", flush=True)
