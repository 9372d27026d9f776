"""The conv-4: its architecture, batch norm in meta-learning mode, pooling, and use inside MAML."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmeta import Task, classification_loss, init_state, make_meta_step, maml
from jax.test_util import check_grads

from jaxmeta.models import Conv4, TaskBatchNorm, functional, max_pool_2x2
from jaxmeta.models.conv import channel_major_product, conv3x3


def test_max_pool_matches_reduce_window_including_odd_sizes():
    x = jax.random.normal(jax.random.key(0), (2, 7, 5, 3))
    expected = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    np.testing.assert_array_equal(max_pool_2x2(x), expected)
    assert max_pool_2x2(x).shape == (2, 3, 2, 3)


def test_max_pool_sends_the_gradient_to_the_first_maximal_element_of_each_window():
    x = jnp.array([[3.0, 3.0], [3.0, 1.0]])[..., None]  # a three-way tie
    np.testing.assert_array_equal(jax.grad(lambda v: max_pool_2x2(v).sum())(x)[..., 0], [[1.0, 0.0], [0.0, 0.0]])
    y = jnp.array([[0.0, 2.0], [5.0, 1.0]])[..., None]
    np.testing.assert_array_equal(jax.grad(lambda v: max_pool_2x2(v).sum())(y)[..., 0], [[0.0, 0.0], [1.0, 0.0]])


def test_max_pool_second_derivatives_follow_the_same_element_at_ties():
    # f = y^2 with y = x[i*]: the Hessian is 2 e e^T, e the indicator of the first maximal element.
    x = jnp.array([[1.0, 3.0], [3.0, 3.0]])[..., None]
    f = lambda v: jnp.sum(max_pool_2x2(v) ** 2)  # noqa: E731
    e = jnp.zeros((2, 2, 1)).at[0, 1, 0].set(1.0)
    expected = 2 * jnp.einsum("ijk,lmn->ijklmn", e, e)
    np.testing.assert_array_equal(jax.hessian(f)(x), expected)  # forward over reverse
    np.testing.assert_array_equal(jax.jacrev(jax.grad(f))(x), expected)  # reverse over reverse


def test_max_pool_gradient_matches_finite_differences():
    x = jax.random.normal(jax.random.key(0), (1, 5, 4, 2))
    f = lambda v: jnp.sum(jnp.sin(max_pool_2x2(v)))  # noqa: E731
    direction = jax.random.normal(jax.random.key(1), x.shape)
    eps = 1e-6
    numeric = (f(x + eps * direction) - f(x - eps * direction)) / (2 * eps)
    np.testing.assert_allclose(jnp.vdot(jax.grad(f)(x), direction), numeric, rtol=1e-7)


@pytest.mark.long
def test_exact_maml_gradient_through_pooling_is_finite_and_the_same_with_remat():
    # With jnp.max's tie-averaging gradient this configuration gave a NaN meta-gradient
    # under jit (and a 40% remat difference at 32 filters on 28x28 images).
    model = Conv4(num_classes=5, features=64, blocks=2, conv="im2col")
    rng = np.random.default_rng(0)
    support = (jnp.asarray(rng.integers(0, 256, (5, 12, 12, 1)), jnp.uint8), jnp.arange(5))
    query = (jnp.asarray(rng.integers(0, 256, (5, 12, 12, 1)), jnp.uint8), jnp.arange(5))
    params = model.init(jax.random.key(0), support[0])["params"]
    loss_fn = classification_loss(functional(model))

    def meta_gradient(remat):
        learner = maml(loss_fn, inner_lr=0.1, inner_steps=2, remat=remat)
        return jax.jit(learner.task_grad)(params, Task(support, query), jax.random.key(1))[0]

    plain, rematerialised = meta_gradient(False), meta_gradient(True)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(plain))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12), plain, rematerialised)


def test_task_batch_norm_uses_the_batch_statistics_with_learned_scale_and_offset():
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(6, 4, 4, 5))
    norm = TaskBatchNorm(epsilon=1e-5)
    params = {"scale": np.linspace(0.5, 2.0, 5), "bias": np.linspace(-1.0, 1.0, 5)}
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    expected = (x - mean) / np.sqrt(var + 1e-5) * params["scale"] + params["bias"]
    np.testing.assert_allclose(norm.apply({"params": params}, x), expected, rtol=1e-10)
    # Nothing but parameters: no running averages to carry between calls.
    assert set(norm.init(jax.random.key(0), x)) == {"params"}


def test_conv4_architecture_and_parameter_count():
    model = Conv4(num_classes=5)
    params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
    assert params["block_0"]["conv"]["kernel"].shape == (3, 3, 1, 64)
    assert params["block_3"]["conv"]["kernel"].shape == (3, 3, 64, 64)
    assert params["head"]["kernel"].shape == (64, 5)  # 28 -> 14 -> 7 -> 3 -> 1
    conv = (9 * 1 * 64 + 64) + 3 * (9 * 64 * 64 + 64)
    assert sum(p.size for p in jax.tree.leaves(params)) == conv + 4 * 2 * 64 + (64 * 5 + 5)


@pytest.mark.parametrize("scheme", ["lecun", "pytorch", "learn2learn"])
def test_conv4_initialisation_schemes_draw_each_parameter_from_their_stated_distribution(scheme):
    model = Conv4(num_classes=512, init_scheme=scheme)  # a wide head: enough draws for its statistics
    params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
    layer_2, first, head = params["block_1"]["conv"]["kernel"], params["block_0"]["conv"]["kernel"], params["head"]
    scale = params["block_2"]["norm"]["scale"]
    fan_in, first_fans = 9 * 64, (9 * 1, 9 * 64)
    if scheme == "lecun":  # truncated normal with Var = 1 / fan_in
        np.testing.assert_allclose(layer_2.std(), fan_in ** -0.5, rtol=0.03)
        np.testing.assert_allclose(head["kernel"].std(), 64 ** -0.5, rtol=0.03)
        np.testing.assert_array_equal(scale, 1.0)
    elif scheme == "pytorch":  # U(+-1 / sqrt(fan_in)), as torch.nn.Conv2d and Linear
        bound = fan_in ** -0.5
        assert float(jnp.abs(layer_2).max()) <= bound and float(jnp.abs(layer_2).max()) > 0.99 * bound
        np.testing.assert_allclose(layer_2.std(), bound / 3 ** 0.5, rtol=0.03)
        np.testing.assert_allclose(head["kernel"].std(), 64 ** -0.5 / 3 ** 0.5, rtol=0.03)
        np.testing.assert_array_equal(scale, 1.0)
    else:  # Glorot-uniform convs (the 1-channel first layer: fan_in 9, fan_out 576), U(0, 1) scales, N(0, 1) head
        bound = (6 / sum(first_fans)) ** 0.5
        assert float(jnp.abs(first).max()) <= bound and float(jnp.abs(first).max()) > 0.95 * bound
        np.testing.assert_allclose(head["kernel"].std(), 1.0, rtol=0.03)
        assert float(scale.min()) >= 0 and float(scale.max()) < 1 and abs(float(scale.mean()) - 0.5) < 0.1
    for block in range(4):
        np.testing.assert_array_equal(params[f"block_{block}"]["conv"]["bias"], 0.0)
    np.testing.assert_array_equal(head["bias"], 0.0)


def test_an_unknown_initialisation_scheme_is_refused_with_the_choices():
    choices = r"\['learn2learn', 'lecun', 'pytorch', 'relation-net'\]"
    with pytest.raises(ValueError, match=r"init_scheme must be one of " + choices):
        Conv4(num_classes=2, init_scheme="he").init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))


def test_conv4_scales_uint8_input_to_unit_range():
    model = Conv4(num_classes=3, features=4)
    images = np.random.default_rng(1).integers(0, 256, size=(6, 28, 28, 1), dtype=np.uint8)
    params = model.init(jax.random.key(0), images)["params"]
    as_uint8 = model.apply({"params": params}, images)
    as_float = model.apply({"params": params}, images.astype(np.float32) / 255)
    np.testing.assert_allclose(as_uint8, as_float, rtol=1e-5, atol=1e-5)


def test_conv4_normalises_each_task_with_its_own_statistics_under_vmap():
    model = Conv4(num_classes=2, features=4)
    tasks = jax.random.uniform(jax.random.key(0), (3, 4, 28, 28, 1))
    params = model.init(jax.random.key(1), tasks[0])["params"]
    batched = jax.vmap(lambda x: model.apply({"params": params}, x))(tasks)
    for i in range(3):
        np.testing.assert_allclose(batched[i], model.apply({"params": params}, tasks[i]), rtol=1e-5, atol=1e-6)
    # A task's predictions depend on the rest of its batch (batch statistics), not on other tasks.
    shifted = tasks.at[1].multiply(3.0)
    again = jax.vmap(lambda x: model.apply({"params": params}, x))(shifted)
    np.testing.assert_allclose(again[0], batched[0], rtol=1e-6)


def test_conv4_rejects_images_without_a_channel_axis():
    model = Conv4(num_classes=2, features=4)
    with pytest.raises(ValueError, match="channel axis"):
        model.init(jax.random.key(0), jnp.zeros((2, 28, 28)))


@pytest.mark.long
def test_second_order_maml_step_through_batch_norm_learns_a_tiny_task():
    model = Conv4(num_classes=2, features=4, blocks=2)
    loss_fn = classification_loss(functional(model))
    params = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))["params"]
    learner, optimizer = maml(loss_fn, inner_lr=0.1), optax.adam(1e-2)
    rng = np.random.default_rng(0)
    # Two classes: bright top half vs bright bottom half, 2 tasks, 2 shots and 3 queries per class.
    def images(n):
        top = np.zeros((n, 8, 8, 1), np.float32)
        top[:, :4] = 1
        bottom = 1 - top
        x = np.concatenate([top, bottom]) + rng.normal(0, 0.1, (2 * n, 8, 8, 1)).astype(np.float32)
        return x, np.repeat(np.arange(2), n)
    support, query = [images(2) for _ in range(2)], [images(3) for _ in range(2)]

    def stack(parts):
        return tuple(np.stack(p) for p in zip(*parts))

    tasks = Task(stack(support), stack(query))
    step = make_meta_step(learner, optimizer)
    state = init_state(learner, optimizer, params)
    losses = []
    for i in range(15):
        state, metrics = step(state, tasks, jax.random.key(i))
        losses.append(float(metrics["loss"]))
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0]


@pytest.mark.long
@pytest.mark.parametrize("channels, features", [(5, 4), (1, 16)])  # channel-last and channel-major patches
def test_im2col_and_xla_convolutions_compute_the_same_function_and_gradients(channels, features):
    x = jax.random.normal(jax.random.key(0), (2, 3, 7, 6, channels))  # extra leading (task) axis, odd sizes
    models = {impl: Conv4(num_classes=3, features=features, blocks=2, conv=impl) for impl in ("xla", "im2col")}
    params = models["xla"].init(jax.random.key(1), x[0])["params"]
    assert jax.tree.structure(params) == jax.tree.structure(models["im2col"].init(jax.random.key(1), x[0])["params"])
    outputs = {impl: jax.vmap(functools.partial(m.apply, {"params": params}))(x) for impl, m in models.items()}
    np.testing.assert_allclose(outputs["im2col"], outputs["xla"], rtol=1e-10, atol=1e-12)
    grads = {impl: jax.grad(lambda p, m=m: jnp.sum(jnp.sin(m.apply({"params": p}, x[0]))))(params)
             for impl, m in models.items()}
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12), grads["im2col"], grads["xla"])


def test_channel_major_product_derivatives_match_finite_differences_to_third_order():
    keys = jax.random.split(jax.random.key(0), 3)
    patches = jax.random.normal(keys[0], (9, 2, 3, 4, 5))  # taps, channels, a task axis and 4x5 pixels
    kernel = jax.random.normal(keys[1], (9, 2, 6))
    out_cotangent = jax.random.normal(keys[2], (3, 4, 5, 6))
    check_grads(channel_major_product, (patches, kernel), order=3, modes=["rev"], eps=1e-4)
    # The written-out cotangents equal JAX's own transposes of the plain product, under vmap too.
    plain = lambda p, k: jnp.tensordot(p, k, axes=((0, 1), (0, 1)))  # noqa: E731
    vjps = [jax.vjp(f, patches, kernel)[1](out_cotangent) for f in (channel_major_product, plain)]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12), *vjps)
    batched = jax.vmap(channel_major_product, in_axes=(2, None))(patches, kernel)
    np.testing.assert_allclose(batched, plain(patches, kernel), rtol=1e-12)


@pytest.mark.long
def test_im2col_maml_meta_gradient_input_gradient_and_its_derivative_equal_xla():
    # The conv-4's 1-channel first layer takes the channel-major product under im2col.
    models = {impl: Conv4(num_classes=3, features=16, blocks=2, conv=impl) for impl in ("xla", "im2col")}
    rng = np.random.default_rng(0)
    support = (jnp.asarray(rng.normal(size=(3, 8, 8, 1))), jnp.arange(3))
    query = (jnp.asarray(rng.normal(size=(6, 8, 8, 1))), jnp.arange(6) % 3)
    params = jax.tree.map(lambda p: p.astype(jnp.float64), models["xla"].init(jax.random.key(0), support[0])["params"])
    direction = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape)), params)

    @functools.partial(jax.jit, static_argnums=0)  # one compiled program per model, not op by op
    def derivatives(model):
        loss = lambda p, batch: classification_loss(functional(model))(p, batch, key=None)[0]  # noqa: E731

        def meta_loss(p, support_images):  # exact MAML with one inner step
            inner_grad = jax.grad(loss)(p, (support_images, support[1]))
            return loss(jax.tree.map(lambda w, g: w - 0.1 * g, p, inner_grad), query)

        meta_gradient = jax.grad(meta_loss)
        return (meta_gradient(params, support[0]),
                jax.grad(meta_loss, argnums=1)(params, support[0]),  # through the inner step's gradient
                jax.jvp(lambda p: meta_gradient(p, support[0]), (params,), (direction,))[1])

    for a, b in zip(*map(derivatives, models.values())):
        jax.tree.map(lambda u, v: np.testing.assert_allclose(v, u, rtol=1e-8, atol=1e-11), a, b)


def test_an_unknown_convolution_implementation_is_refused():
    with pytest.raises(ValueError, match=r"implementation must be one of \('xla', 'im2col', 'onednn'\)"):
        Conv4(num_classes=2, conv="fft").init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))


@pytest.mark.parametrize("size", [28, 5])
def test_unpadded_im2col_is_xlas_valid_convolution(size):
    """"VALID": the "SAME" result without its border, values and both gradients, float64."""
    kx, kk = jax.random.split(jax.random.key(6))
    x = jax.random.normal(kx, (2, size, size, 3), jnp.float64)
    kernel = jax.random.normal(kk, (3, 3, 3, 4), jnp.float64)
    expected = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    assert expected.shape == (2, size - 2, size - 2, 4)
    np.testing.assert_allclose(conv3x3(x, kernel, "xla", padding="VALID"), expected, rtol=1e-12)
    np.testing.assert_allclose(conv3x3(x, kernel, "im2col", padding="VALID"), expected, rtol=1e-12)
    loss = lambda impl: lambda x, k: jnp.sum(jnp.sin(conv3x3(x, k, impl, padding="VALID")))  # noqa: E731
    for ours, theirs in zip(jax.grad(loss("im2col"), (0, 1))(x, kernel), jax.grad(loss("xla"), (0, 1))(x, kernel)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10)
    with pytest.raises(ValueError, match="padding 'VALID' is implemented for stride 1 only"):
        conv3x3(x, kernel, "xla", stride=2, padding="VALID")
    with pytest.raises(ValueError, match="padding must be 'SAME' or 'VALID', got 'same'"):
        conv3x3(x, kernel, "xla", padding="same")


@pytest.mark.parametrize("size", [28, 7, 4])
def test_stride_two_im2col_is_xlas_strided_convolution(size):
    """TensorFlow's "SAME" padding at stride 2 (the odd pixel at the end), values and both gradients, float64."""
    kx, kk = jax.random.split(jax.random.key(5))
    x = jax.random.normal(kx, (2, size, size, 3), jnp.float64)
    kernel = jax.random.normal(kk, (3, 3, 3, 4), jnp.float64)
    expected = conv3x3(x, kernel, "xla", stride=2)
    assert expected.shape == (2, -(-size // 2), -(-size // 2), 4)
    np.testing.assert_allclose(conv3x3(x, kernel, "im2col", stride=2), expected, rtol=1e-12)
    loss = lambda impl: lambda x, k: jnp.sum(jnp.sin(conv3x3(x, k, impl, stride=2)))  # noqa: E731
    for ours, theirs in zip(jax.grad(loss("im2col"), (0, 1))(x, kernel), jax.grad(loss("xla"), (0, 1))(x, kernel)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10)


def test_the_reptile_papers_network_halves_by_stride():
    model = Conv4(num_classes=5, features=8, downsample="stride")
    params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
    assert params["head"]["kernel"].shape == (2 * 2 * 8, 5)  # 28 -> 14 -> 7 -> 4 -> 2
    x = jax.random.uniform(jax.random.key(1), (3, 28, 28, 1), jnp.float64)
    im2col = Conv4(num_classes=5, features=8, downsample="stride", conv="im2col")
    np.testing.assert_allclose(jax.jit(model.apply)({"params": params}, x),
                               jax.jit(im2col.apply)({"params": params}, x), rtol=1e-10)
    with pytest.raises(ValueError, match="downsample must be one of"):
        Conv4(num_classes=5, downsample="dilate").init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
