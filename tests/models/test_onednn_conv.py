"""conv="onednn": oneDNN's convolutions as XLA custom calls, against XLA's own convolution in float32.

The custom calls compute in float32 only, so these tests compare them with ``lax.conv_general_dilated``
(whose derivatives tests/models/test_conv.py checks against finite differences in float64) at float32
tolerances. ``make test`` builds the extension first (``make onednn``); without it these tests fail.
"""

import ctypes
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmeta
from jaxmeta.models import Conv4, functional, onednn_conv
from jaxmeta.models.conv import conv3x3

F32 = dict(rtol=2e-5, atol=2e-5)


def _normal(key, shape, scale=1.0):
    return scale * jax.random.normal(jax.random.key(key), shape, jnp.float32)


def _close(a, b, scale_tol=3e-6):
    """Equal up to float32 rounding, relative to the largest entry (sums of hundreds of products)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=0, atol=scale_tol * max(np.abs(b).max(), 1e-30))


def _xla(x, kernel):
    return conv3x3(x, kernel, "xla")


@pytest.mark.parametrize("shape, features", [((2, 6, 5, 16), 32), ((3, 7, 7, 3), 8), ((5, 3, 3, 64), 64)])
def test_the_convolution_equals_xla_s(shape, features):
    x, kernel = _normal(0, shape), _normal(1, (3, 3, shape[-1], features), 0.2)
    _close(onednn_conv.conv3x3_onednn(x, kernel), _xla(x, kernel))


def test_each_custom_call_is_the_transpose_xla_computes():
    x, kernel, out_cotangent = _normal(0, (4, 6, 6, 16)), _normal(1, (3, 3, 16, 32), 0.2), _normal(2, (4, 6, 6, 32))
    _, vjp = jax.vjp(_xla, x, kernel)
    x_cotangent, kernel_cotangent = vjp(out_cotangent)
    _close(onednn_conv.backward_data(out_cotangent, kernel), x_cotangent)
    _close(onednn_conv.backward_weights(x, out_cotangent), kernel_cotangent)


def test_first_and_second_order_derivatives_equal_xla_s():
    x, kernel = _normal(0, (2, 3, 6, 5, 16)), _normal(1, (3, 3, 16, 16), 0.2)  # a leading task axis

    def loss(conv):
        return lambda x, k: jnp.sum(jnp.sin(conv(x, k)))

    def gradient_norm(conv):  # depends on the first derivatives: its gradient is a second-order one
        return lambda x, k: sum(jnp.sum(g ** 2) for g in jax.grad(loss(conv), (0, 1))(x, k))

    for make in (loss, gradient_norm):
        ours = jax.grad(make(onednn_conv.conv3x3_onednn), (0, 1))(x, kernel)
        reference = jax.grad(make(_xla), (0, 1))(x, kernel)
        for a, b in zip(ours, reference):
            _close(a, b)


def test_third_order_derivatives_equal_xla_s():
    # Each custom call's cotangents are the other calls, so every order of reverse mode stays on oneDNN.
    x, kernel = _normal(0, (2, 4, 4, 16)), _normal(1, (3, 3, 16, 16), 0.2)
    direction = _normal(2, kernel.shape)

    def third(conv):
        f = lambda k: jnp.sum(jnp.tanh(conv(x, k)))  # noqa: E731
        hvp = lambda k: jax.grad(lambda k: jnp.vdot(jax.grad(f)(k), direction))(k)  # noqa: E731
        return jax.grad(lambda k: jnp.vdot(hvp(k), direction))(kernel)

    _close(third(onednn_conv.conv3x3_onednn), third(_xla), 1e-5)


def test_vmap_over_per_task_kernels_and_jit():
    x, kernels = _normal(0, (3, 2, 5, 5, 16)), _normal(1, (3, 3, 3, 16, 16), 0.2)
    batched = jax.jit(jax.vmap(onednn_conv.conv3x3_onednn))(x, kernels)
    _close(batched, jax.vmap(_xla)(x, kernels))


@pytest.mark.long  # about 10 s of compiling on 2 cores
def test_a_maml_step_sharded_over_host_devices_equals_the_unsharded_one():
    # jaxmeta.distributed runs the step in shard_map, where the custom calls' results vary with the device's tasks.
    from jaxmeta import distributed

    model = Conv4(num_classes=2, features=16, blocks=2, conv="onednn")
    rng = np.random.default_rng(1)
    images = lambda n: jnp.asarray(rng.integers(0, 256, (4, n, 8, 8, 1)), jnp.uint8)  # noqa: E731
    labels = lambda n: jnp.tile(jnp.arange(2), (4, n // 2))  # noqa: E731
    tasks = jaxmeta.Task((images(2), labels(2)), (images(4), labels(4)))
    params = jax.tree.map(lambda p: p.astype(jnp.float32),
                          model.clone(conv="im2col").init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))["params"])
    learner = jaxmeta.maml(jaxmeta.classification_loss(functional(model)), inner_lr=0.4, inner_steps=1)
    optimizer = optax.sgd(1.0)
    state = jaxmeta.init_state(learner, optimizer, params)
    mesh = distributed.task_mesh(num_devices=2)
    sharded = distributed.make_sharded_meta_step(learner, optimizer, mesh, task_chunk=1)
    sharded_state, _ = sharded(distributed.replicate(state, mesh), tasks, jax.random.key(1))
    single_state, _ = jaxmeta.make_meta_step(learner, optimizer, task_chunk=1)(state, tasks, jax.random.key(1))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **F32), sharded_state.meta_params,
                 single_state.meta_params)


def test_an_unpadded_convolution_is_im2cols():
    x, kernel = _normal(0, (2, 11, 11, 64)), _normal(1, (3, 3, 64, 32), 0.1)
    expected = conv3x3(x, kernel, "im2col", padding="VALID")
    assert expected.shape == (2, 9, 9, 32)
    np.testing.assert_allclose(conv3x3(x, kernel, "onednn", padding="VALID"), expected, **F32)


def test_results_are_bitwise_reproducible():
    x, kernel = _normal(0, (8, 14, 14, 64)), _normal(1, (3, 3, 64, 64), 0.1)
    grad = jax.jit(jax.grad(lambda x, k: jnp.sum(jnp.sin(onednn_conv.conv3x3_onednn(x, k))), (0, 1)))
    first, second = grad(x, kernel), grad(x, kernel)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_conv4_with_onednn_equals_im2col_in_a_maml_meta_step():
    # The 1-channel first layer stays im2col (9C < O); the 16-channel layers run on oneDNN.
    models = {impl: Conv4(num_classes=3, features=16, blocks=2, conv=impl) for impl in ("im2col", "onednn")}
    rng = np.random.default_rng(0)
    images = lambda n: jnp.asarray(rng.integers(0, 256, (2, n, 10, 10, 1)), jnp.uint8)  # noqa: E731
    labels = lambda n: jnp.tile(jnp.arange(3), (2, n // 3))  # noqa: E731
    tasks = jaxmeta.Task((images(3), labels(3)), (images(6), labels(6)))
    params = jax.tree.map(lambda p: p.astype(jnp.float32),
                          models["im2col"].init(jax.random.key(0), jnp.zeros((1, 10, 10, 1)))["params"])
    results = {}
    for impl, model in models.items():
        learner = jaxmeta.maml(jaxmeta.classification_loss(functional(model)), inner_lr=0.4, inner_steps=1)
        optimizer = optax.sgd(1.0)
        state = jaxmeta.init_state(learner, optimizer, params)
        results[impl] = jaxmeta.make_meta_step(learner, optimizer, task_chunk=1)(state, tasks, jax.random.key(1))
    (state_a, metrics_a), (state_b, metrics_b) = results["im2col"], results["onednn"]
    np.testing.assert_allclose(metrics_b["loss"], metrics_a["loss"], rtol=1e-5)
    moved = jax.tree.map(lambda new, old: np.abs(np.asarray(new) - np.asarray(old)).max(), state_a.meta_params, params)
    assert max(jax.tree.leaves(moved)) > 1e-3  # the step changed the parameters, so the comparison can fail
    jax.tree.map(lambda a, b: np.testing.assert_allclose(b, a, **F32), state_a.meta_params, state_b.meta_params)


def test_other_dtypes_and_kernel_shapes_are_refused_with_the_fix():
    with pytest.raises(TypeError, match="float32 only.*conv='im2col'"):
        onednn_conv.conv3x3_onednn(jnp.zeros((1, 4, 4, 16)), jnp.zeros((3, 3, 16, 16)))  # float64 here
    with pytest.raises(ValueError, match=r"expected a \[3, 3, 16, O\] kernel"):
        onednn_conv.conv3x3_onednn(jnp.zeros((1, 4, 4, 16), jnp.float32), jnp.zeros((3, 3, 8, 16), jnp.float32))


def test_a_missing_extension_is_compiled_into_the_cache_on_first_use(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(onednn_conv, "EXTENSION", tmp_path / "absent.so")  # as for a user of the wheel
    monkeypatch.setenv("JAXMETA_CACHE", str(tmp_path / "cache"))
    assert onednn_conv.extension() is None and not onednn_conv.available()
    built = onednn_conv.build()
    assert built == onednn_conv.cached_extension() and str(built).startswith(str(tmp_path / "cache"))
    assert onednn_conv.extension() == built
    library = ctypes.CDLL(str(built))
    assert all(hasattr(library, symbol) for symbol in onednn_conv._TARGETS.values())


def test_what_the_first_use_build_needs_is_named_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with pytest.raises(RuntimeError, match="no C\\+\\+ compiler .*apt install g\\+\\+"):
        onednn_conv.build(tmp_path / "lib.so")
    monkeypatch.delenv("CXX")
    monkeypatch.setattr(onednn_conv.sys, "prefix", str(tmp_path))  # an environment without oneDNN's wheels
    with pytest.raises(RuntimeError, match=r"pip install 'jaxmeta\[onednn\]'"):
        onednn_conv.build(tmp_path / "lib.so")


def test_a_damaged_extension_is_reported_with_the_fix(monkeypatch, tmp_path):
    damaged = tmp_path / "damaged.so"
    damaged.write_bytes(b"not a shared library")
    monkeypatch.setattr(onednn_conv, "EXTENSION", damaged)
    monkeypatch.setattr(onednn_conv, "load", onednn_conv.load.__wrapped__)  # skip the cache of the real load
    with pytest.raises(RuntimeError, match="does not load .*delete it to have it rebuilt"):
        onednn_conv.load()
