import time, jax, jax.numpy as jnp, numpy as np
def bench(f, *a, n=5):
    f = jax.jit(f); jax.block_until_ready(f(*a)); ts=[]
    for _ in range(n):
        t=time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter()-t)
    return np.median(ts)
k = jax.random.key(0)
B, M, K, N = 32, 75*196, 576, 64
a = jax.random.normal(k, (B, M, K)); w = jax.random.normal(k, (B, K, N)); w1 = w[0]
fl = 2*B*M*K*N
t = bench(lambda a, w: a.reshape(-1, K) @ w, a, w1); print("shared weight", t*1e3, fl/t/1e9)
t = bench(lambda a, w: jnp.einsum("bmk,bkn->bmn", a, w), a, w); print("batched", t*1e3, fl/t/1e9)
t = bench(lambda a, g: jnp.einsum("bmk,bmn->bkn", a, g), a, jax.random.normal(k,(B,M,N))); print("batched wgrad", t*1e3, fl/t/1e9)
t = bench(lambda g, w: jnp.einsum("bmn,bkn->bmk", g, w), jax.random.normal(k,(B,M,N)), w); print("batched dgrad", t*1e3, fl/t/1e9)
t = bench(lambda a, g: jax.vmap(lambda a, g: a.T @ g)(a, g), a, jax.random.normal(k,(B,M,N))); print("vmap wgrad", t*1e3, fl/t/1e9)
