"""The three products of a 3x3 im2col convolution (layer 2 of the conv-4 on 75 query images), in both layouts.

Channels-last (the library's im2col): patches ``P`` are ``[M, 9C]``; channels-first: ``[9C, M]``.
Prints the median time of each product, its GFLOP/s, and how many transposes or copies XLA added.
"""
import time

import jax
import numpy as np

M, TAPS, C = 75 * 14 * 14, 576, 64
key = jax.random.key(0)
G = jax.random.normal(key, (C, M))          # output gradient, channels-first
P = jax.random.normal(key, (TAPS, M))       # patches, channels-first
K = jax.random.normal(key, (TAPS, C))       # flattened kernel
G_last, P_last = G.T.copy(), P.T.copy()     # the channels-last operands
contract = lambda a, b, da, db: jax.lax.dot_general(a, b, (((da,), (db,)), ((), ())))  # noqa: E731
cases = {
    "forward, channels-last     P K      [M,576]x[576,64]": (lambda P, K: P @ K, (P_last, K)),
    "forward, channels-first    K^T P    [576,64]^T x [576,M]": (lambda K, P: contract(K, P, 0, 0), (K, P)),
    "kernel grad, channels-last P^T G    [M,576]^T x [M,64]": (lambda P, G: contract(P, G, 0, 0), (P_last, G_last)),
    "kernel grad, channels-first P G^T   [576,M] x [64,M]^T": (lambda P, G: contract(P, G, 1, 1), (P, G)),
    "kernel grad, channels-first G P^T   [64,M] x [576,M]^T": (lambda G, P: contract(G, P, 1, 1), (G, P)),
    "input grad, channels-last  G K^T    [M,64] x [576,64]^T": (lambda G, K: G @ K.T, (G_last, K)),
    "input grad, channels-first K G      [576,64] x [64,M]": (lambda K, G: K @ G, (K, G)),
}
for name, (f, args) in cases.items():
    compiled = jax.jit(f).lower(*args).compile()
    text = compiled.as_text()
    added = text.count(" transpose(") + text.count(" copy(")
    jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(20):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    t = float(np.median(times))
    print(f"{name:60s} {t * 1e3:7.2f} ms {2 * M * TAPS * C / t / 1e9:6.1f} GFLOP/s  transposes/copies: {added}")
