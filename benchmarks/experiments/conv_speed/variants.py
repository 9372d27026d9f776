import time, sys
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_default_matmul_precision", "default")
B = int(sys.argv[2]) if len(sys.argv) > 2 else 32
WAYS, SHOTS, QUERIES, STEPS, LR = 5, 1, 15, 1, 0.4
variant = sys.argv[1]
H = 64

def pool(x):  # [N,H,W,C] -> reshape max 2x2, floor
    n, h, w, c = x.shape
    h2, w2 = h // 2, w // 2
    x = x[:, :h2*2, :w2*2]
    return x.reshape(n, h2, 2, w2, 2, c).max(axis=(2, 4))

def pool_rw(x):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1,2,2,1), (1,2,2,1), "VALID")

def bn(x, g, b):
    m = x.mean(axis=(0,1,2)); v = x.var(axis=(0,1,2))
    return (x - m) * jax.lax.rsqrt(v + 1e-5) * g + b

def conv_xla(x, w):
    return jax.lax.conv_general_dilated(x, w, (1,1), "SAME", dimension_numbers=("NHWC","HWIO","NHWC"))

def conv_im2col(x, w):
    n, h, wd, c = x.shape
    xp = jnp.pad(x, ((0,0),(1,1),(1,1),(0,0)))
    patches = jnp.concatenate([xp[:, i:i+h, j:j+wd] for i in range(3) for j in range(3)], axis=-1)
    return patches @ w.reshape(9*c, -1)

def conv_shift(x, w):
    n, h, wd, c = x.shape
    xp = jnp.pad(x, ((0,0),(1,1),(1,1),(0,0)))
    out = 0
    for i in range(3):
        for j in range(3):
            out = out + xp[:, i:i+h, j:j+wd] @ w[i, j]
    return out

def conv_im2col_t(x, w):
    """Patches built channel-major [9C, N, H, W], so that the kernel gradient is a plain [9C, M] @ [M, O]."""
    n, h, wd, c = x.shape
    xp = jnp.pad(x, ((0,0),(1,1),(1,1),(0,0)))
    p = jnp.stack([xp[:, i:i+h, j:j+wd] for i in range(3) for j in range(3)], axis=0)  # [9, N, H, W, C]
    p = jnp.moveaxis(p, -1, 1).reshape(9 * c, n, h, wd)
    return jnp.einsum("knhw,ko->nhwo", p, w.reshape(9 * c, -1))

def conv_barrier(x, w):
    """im2col whose output (and so, by transposition, its output gradient) is materialised on its own."""
    return jax.lax.optimization_barrier(conv_im2col(x, w))

def conv_elementwise(x, w):
    """Multiply-and-sum over the 9 taps instead of a GEMM (for 1 input channel): no transposes in any gradient."""
    n, h, wd, c = x.shape
    xp = jnp.pad(x, ((0,0),(1,1),(1,1),(0,0)))
    w = w.reshape(9 * c, -1)
    return sum(xp[:, i:i+h, j:j+wd, ci, None] * w[(3 * i + j) * c + ci] for i in range(3) for j in range(3) for ci in range(c))

convs = {"ew": conv_elementwise, "barrier": conv_barrier, "xla": conv_xla, "im2col": conv_im2col, "shift": conv_shift, "im2colT": conv_im2col_t}

@jax.custom_vjp
def pool_vjp(x):
    return pool(x)

def _pool_fwd(x):
    y = pool(x)
    return y, (x, y)

def _pool_bwd(res, g):
    x, y = res
    n, h, w, c = x.shape
    h2, w2 = h // 2, w // 2
    xc = x[:, :2*h2, :2*w2].reshape(n, h2, 2, w2, 2, c)
    up = lambda a: jnp.broadcast_to(a[:, :, None, :, None, :], (n, h2, 2, w2, 2, c))
    gx = jnp.where(xc == up(y), up(g), 0.0).reshape(n, 2*h2, 2*w2, c)
    return (jnp.pad(gx, ((0, 0), (0, h - 2*h2), (0, w - 2*w2), (0, 0))),)

pool_vjp.defvjp(_pool_fwd, _pool_bwd)

def make_forward(conv1, conv, poolf):
    def forward(p, x):
        for l in range(4):
            x = (conv1 if l == 0 else conv)(x, p[f"w{l}"]) + p[f"c{l}"]
            x = bn(x, p[f"g{l}"], p[f"b{l}"])
            x = poolf(jax.nn.relu(x))
        x = x.reshape(x.shape[0], -1)
        return x @ p["wo"] + p["bo"]
    return forward

def init(key):
    p = {}
    ks = jax.random.split(key, 5)
    cin = 1
    for l in range(4):
        p[f"w{l}"] = jax.random.normal(ks[l], (3,3,cin,H)) * (2/(9*cin))**.5
        p[f"c{l}"] = jnp.zeros(H); p[f"g{l}"] = jnp.ones(H); p[f"b{l}"] = jnp.zeros(H)
        cin = H
    p["wo"] = jax.random.normal(ks[4], (H, WAYS)) * 0.01; p["bo"] = jnp.zeros(WAYS)
    return p

def xent(logits, y):
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

parts = variant.split("-")  # e.g. im2col-im2col-reshape-vmap
c1, c, pl, batching = parts
forward = make_forward(convs[c1], convs[c], {"reshape": pool, "rw": pool_rw, "vjp": pool_vjp}[pl])

def task_loss(p, xs, ys, xq, yq):
    def inner(p):
        return xent(forward(p, xs), ys)
    for _ in range(STEPS):
        g = jax.grad(inner)(p)
        p = jax.tree.map(lambda a, b: a - LR * b, p, g)
    return xent(forward(p, xq), yq)

def meta_grad(p, xs, ys, xq, yq):
    if batching == "vmap":
        gs = jax.vmap(jax.grad(task_loss), in_axes=(None, 0, 0, 0, 0))(p, xs, ys, xq, yq)
        return jax.tree.map(lambda g: g.mean(0), gs)
    if batching == "unroll":
        gs = [jax.grad(task_loss)(p, xs[i], ys[i], xq[i], yq[i]) for i in range(xs.shape[0])]
        return jax.tree.map(lambda *g: sum(g) / len(g), *gs)
    if batching == "scan":
        def body(acc, t):
            g = jax.grad(task_loss)(p, *t)
            return jax.tree.map(jnp.add, acc, g), None
        acc, _ = jax.lax.scan(body, jax.tree.map(jnp.zeros_like, p), (xs, ys, xq, yq))
        return jax.tree.map(lambda g: g / xs.shape[0], acc)

step = jax.jit(meta_grad)
key = jax.random.key(0)
p = init(key)
xs = jax.random.uniform(key, (B, WAYS*SHOTS, 28, 28, 1)); ys = jnp.tile(jnp.arange(WAYS), (B, SHOTS))
xq = jax.random.uniform(key, (B, WAYS*QUERIES, 28, 28, 1)); yq = jnp.tile(jnp.arange(WAYS), (B, QUERIES))
t0 = time.perf_counter(); lowered = step.lower(p, xs, ys, xq, yq); comp = lowered.compile(); tc = time.perf_counter() - t0
flops = comp.cost_analysis()
flops = (flops[0] if isinstance(flops, list) else flops).get("flops", float("nan"))
jax.block_until_ready(comp(p, xs, ys, xq, yq))
ts = []
for _ in range(int(sys.argv[3]) if len(sys.argv) > 3 else 5):
    t = time.perf_counter(); jax.block_until_ready(comp(p, xs, ys, xq, yq)); ts.append(time.perf_counter() - t)
med = np.median(ts)
print(f"{variant:28s} B={B} compile {tc:5.1f}s step {med*1e3:7.1f} ms  {B/med:6.1f} tasks/s  {flops/1e9:6.1f} GFLOP  {flops/med/1e9:6.1f} GFLOP/s", flush=True)
