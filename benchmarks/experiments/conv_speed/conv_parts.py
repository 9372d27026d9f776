import time, jax, jax.numpy as jnp, numpy as np
def bench(f, *a, n=7):
    f = jax.jit(f); jax.block_until_ready(f(*a)); ts=[]
    for _ in range(n):
        t=time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter()-t)
    return np.median(ts)
def conv_xla(x, w):
    return jax.lax.conv_general_dilated(x, w, (1,1), "SAME", dimension_numbers=("NHWC","HWIO","NHWC"))
def patches(x):
    n, h, wd, c = x.shape
    xp = jnp.pad(x, ((0,0),(1,1),(1,1),(0,0)))
    return jnp.concatenate([xp[:, i:i+h, j:j+wd] for i in range(3) for j in range(3)], axis=-1)
k = jax.random.key(0)
for (hw, cin) in [(28, 1), (14, 64), (7, 64), (3,64)]:
    x = jax.random.normal(k, (75, hw, hw, cin)); w = jax.random.normal(k, (3, 3, cin, 64)); g = jax.random.normal(k, (75, hw, hw, 64))
    fl = 2*75*hw*hw*9*cin*64
    _, vjp = jax.vjp(conv_xla, x, w)
    fwd = bench(conv_xla, x, w)
    dg = bench(lambda x, w, g: jax.vjp(lambda x: conv_xla(x, w), x)[1](g), x, w, g)
    wg = bench(lambda x, w, g: jax.vjp(lambda w: conv_xla(x, w), w)[1](g), x, w, g)
    wg_i = bench(lambda x, g: jnp.einsum("nhwk,nhwo->ko", patches(x), g).reshape(3,3,cin,64), x, g)
    wg_j = bench(lambda x, g: sum(jnp.einsum("nhwc,nhwo->co", jnp.pad(x, ((0,0),(1,1),(1,1),(0,0)))[:, i:i+hw, j:j+hw], g)[None] for i in range(3) for j in range(3)), x, g)
    print(f"{hw}x{hw}x{cin}: fwd {fwd*1e3:6.2f} ms ({fl/fwd/1e9:5.0f} GF/s)  dgrad {dg*1e3:6.2f} ms ({fl/dg/1e9:5.0f})  wgrad xla {wg*1e3:6.2f} ms ({fl/wg/1e9:5.0f})  wgrad im2col {wg_i*1e3:6.2f} ({fl/wg_i/1e9:5.0f}) wgrad 9 dots {wg_j*1e3:6.2f}", flush=True)
