r"""Meta Networks (Munkhdalai and Yu 2017): fast weights generated from gradients, kept in a memory.

MetaNet has two networks, each with slow weights learned across tasks and
fast weights generated for the task at hand:

* the **base learner** :math:`b(W, W^*; x)`, a classifier over the task's
  ``ways`` labels;
* the **representation function** :math:`u(Q, Q^*; x)`, an embedding whose
  outputs are the keys of the memory.

**Layer augmentation.** In an augmented layer the slow and the fast weights
see the same input, each path goes through the non-linearity, and the two
are added:

.. math::
    y = \operatorname{relu}(W * x + b) + \operatorname{relu}(W^* * x + b^*)

(the output layer adds the two sets of logits without a non-linearity). Here
the last ``fast_blocks`` conv blocks and the output layer are augmented; the
blocks before them have slow weights only.

**Task-level fast weights** :math:`Q^*`. Every support example :math:`x'_i`
gets a verification loss, the mean binary cross-entropy of "same class?" over
its pairs with the other support examples,

.. math::
    L^{\text{emb}}_i = \frac{1}{n-1} \sum_{j \ne i}
        \operatorname{BCE}\big(\sigma(\alpha^\top |u_i - u_j| + c),\ [y'_i = y'_j]\big),

(the twin comparison of a Siamese network), and the meta learner :math:`d`
turns the gradients into fast weights, coordinate by coordinate:

.. math::
    Q^* = \frac1n \sum_{i=1}^n d\big(G;\ \operatorname{pre}(\nabla_Q L^{\text{emb}}_i)\big).

**Example-level fast weights** :math:`W^*_i`. For each support example the
meta learner :math:`m` maps the gradient of the base learner's loss into fast
weights, which are written to a memory whose keys are the support embeddings:

.. math::
    W^*_i = m\big(Z;\ \operatorname{pre}(\nabla_W \operatorname{CE}(b(W; x'_i), y'_i))\big), \qquad
    M = [W^*_1 \ldots W^*_n], \quad R = [u(Q, Q^*; x'_1) \ldots u(Q, Q^*; x'_n)].

**Reading.** A query attends over the keys with a softmax of cosine
similarities and classifies with the fast weights it reads:

.. math::
    a = \operatorname{softmax}\big(\beta \cos(u(Q, Q^*; x), R)\big), \qquad
    W^*_x = \sum_i a_i W^*_i, \qquad \hat y = b(W, W^*_x; x).

Because the augmented layers are linear in the weights before the
non-linearity, ``relu(W^*_x * x)`` is computed as
``relu(sum_i a_i (W^*_i * x))``: one convolution with the ``n`` kernels
stacked, and a weighted sum, instead of a convolution per query.

All slow weights (:math:`W, Q, Z, G`, the verification layer and
:math:`\beta`) are trained end to end on the query cross-entropy, through
the per-example gradients too (second order; they are taken over the
augmented layers only, whose inputs are computed once, so this is cheap).
Without that, the verification layer, which only shapes those gradients,
would never be trained.
``pre`` is the gradient preprocessing of Andrychowicz et al.
(:func:`jaxmeta.optimizers.preprocess_gradient`); :math:`m` and :math:`d` are
coordinate-wise MLPs (20 hidden units), whose last layers start at zero, so
training starts from the slow networks alone.

Differences from the paper, each chosen for a reason:

* :math:`d` is an MLP averaged over the support examples where the paper used
  an LSTM over a sample of them: the task-level weights, and so every
  prediction, do not depend on the order of the support set;
* the attention sharpness :math:`\beta = 1 + \operatorname{softplus}(\cdot)`
  is learned (a softmax over cosines in [-1, 1] is otherwise nearly uniform),
  as :class:`jaxmeta.memory.MANNCell` does;
* no batch norm, and only the last block(s) are augmented, to keep the CPU
  cost near that of the other conv-4 learners (the paper augmented a 5-layer
  CNN on 28x28 Omniglot).

And from the authors' Chainer code for Omniglot (``MetaNetFull``), beyond the
paper's text: it augments all five conv layers and two dense layers of both
networks; its :math:`m` has two hidden layers of 20 units (here one); its
task-level loss is the support set's softmax cross-entropy through a dense
head (here the paper's pairwise verification loss); the gradients fed to
:math:`m` and :math:`d` are constants of the meta-gradient (first order; here
the meta-gradient runs through them, which is what trains the verification
layer); it clips the meta-gradient's norm at 10, trains on 10 queries per
class (here 15, the test setting) with Adam :math:`10^{-3}`, one episode per
step. At the 30-minute CPU budget the 5-way 1-shot accuracy is set by the
number of episodes (``benchmarks/results/omniglot.md``: 97.84% after 12,520 on
one host, 98.40% after 26,740 on a faster one; the paper 98.95%).
"""

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxmeta.metric.distances import cosine_similarities
from jaxmeta.metric.episode import MetricClassifier
from jaxmeta.models.conv import CONV_IMPLEMENTATIONS, conv3x3, images_as_float, max_pool_2x2
from jaxmeta.optimizers.preprocessing import preprocess_gradient

Layers = dict  # {"block_i" | "head": {"kernel", "bias"}}


def mixed_layer(x: jax.Array, fast: Layers, mixing: jax.Array, implementation: str) -> jax.Array:
    r"""The pre-activation of a layer whose weights are a per-example mixture of ``n`` stored ones.

    .. math::
        y_q = \Big(\sum_i a_{qi} K_i\Big) * x_q + \sum_i a_{qi} b_i = \sum_i a_{qi} (K_i * x_q + b_i)

    ``fast["kernel"]`` is ``[n, 3, 3, C, O]`` (conv) or ``[n, F, O]`` (dense),
    ``fast["bias"]`` ``[n, O]``, ``mixing`` ``[N, n]``, ``x`` ``[N, ..., C]``.

    Example:
      >>> import jax.numpy as jnp
      >>> fast = {"kernel": jnp.stack([jnp.eye(2), 2 * jnp.eye(2)]), "bias": jnp.zeros((2, 2))}
      >>> mixed_layer(jnp.ones((1, 2)), fast, jnp.array([[0.5, 0.5]]), "xla").tolist()
      [[1.5, 1.5]]
    """
    kernel, bias = fast["kernel"], fast["bias"]
    n, out = bias.shape
    if kernel.ndim == 3:  # dense: [N, F] x [n, F, O]
        y = jnp.einsum("qf,nfo->qno", x, kernel)
    else:  # conv: the n kernels side by side along the output channels, one convolution
        stacked = jnp.moveaxis(kernel, 0, -2).reshape(*kernel.shape[1:-1], n * out)
        y = conv3x3(x, stacked, implementation).reshape(*x.shape[:-1], n, out)
    spatial = (None,) * (y.ndim - 3)
    return jnp.einsum("q...no,qn->q...o", y, mixing) + (mixing @ bias)[(slice(None),) + spatial]


def apply_layers(layers: Layers, x: jax.Array, names, *, implementation: str, fast: Layers | None = None,
                 mixing: jax.Array | None = None) -> jax.Array:
    """Run the blocks (conv, relu, pool) and the ``head`` among ``names`` in order, augmenting those in ``fast``
    (stored sets of fast weights, mixed per example by ``mixing [N, n]``: :func:`mixed_layer`)."""
    if fast is not None and mixing is None:
        raise ValueError("fast weights need mixing weights [examples, stored sets]: pass mixing= with them.")
    for name in names:
        layer = layers[name]
        if name == "head":
            x = x.reshape(x.shape[0], -1)
            y = x @ layer["kernel"] + layer["bias"]
            if fast is not None and mixing is not None and name in fast:
                y = y + mixed_layer(x, fast[name], mixing, implementation)
            x = y
        else:
            y = nn.relu(conv3x3(x, layer["kernel"], implementation) + layer["bias"])
            if fast is not None and mixing is not None and name in fast:
                y = y + nn.relu(mixed_layer(x, fast[name], mixing, implementation))
            x = max_pool_2x2(y)
    return x


def init_layers(key: jax.Array, image_shape, *, features: int, blocks: int, outputs: int | None = None) -> Layers:
    """Slow weights of ``blocks`` conv blocks (and a ``head`` with ``outputs`` logits), LeCun-normal kernels."""
    height, width, channels = image_shape
    keys = jax.random.split(key, blocks + 1)
    init = nn.initializers.lecun_normal()
    layers = {}
    for i in range(blocks):
        layers[f"block_{i}"] = {"kernel": init(keys[i], (3, 3, channels, features)), "bias": jnp.zeros(features)}
        channels, height, width = features, height // 2, width // 2
    if outputs is not None:
        flat = height * width * channels
        layers["head"] = {"kernel": init(keys[-1], (flat, outputs)), "bias": jnp.zeros(outputs)}
    return layers


class CoordinatewiseMLP(nn.Module):
    """``[..., 2]`` preprocessed gradients -> ``[...]`` fast weights, the same small MLP for every coordinate."""

    hidden: int = 20

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        x = nn.relu(nn.Dense(self.hidden, name="hidden")(features))
        return nn.Dense(1, kernel_init=nn.initializers.zeros, name="output")(x)[..., 0]


class MetaNetState(NamedTuple):
    """What :meth:`MetaNet.episode_state` computes for one episode (``n`` support examples, ``q`` queries)."""

    task_fast: Layers  # Q*, leaves [1, ...]
    memory: Layers  # W*_i, leaves [n, ...]
    support_keys: jax.Array  # [n, D]
    query_keys: jax.Array  # [q, D]
    attention: jax.Array  # [q, n]
    logits: jax.Array  # [q, ways]


class MetaNet(MetricClassifier):
    """MetaNet for ``ways``-way classification episodes (see the module docstring).

    ``model.apply(variables, support_inputs, support_labels, query_inputs)``
    returns ``[queries, ways]`` logits; :meth:`episode_state` returns every
    intermediate. Train it with :func:`jaxmeta.metric.metric_learner` (the
    loss is the query cross-entropy) and score it with
    :func:`jaxmeta.evaluate`. The output layer has ``ways``
    units, so a model is trained and tested at one number of ways.

    Attributes:
      ways: classes per task.
      features: filters per conv block.
      blocks: conv blocks of each network (28x28 inputs: at most 4).
      fast_blocks: how many of the last blocks are layer-augmented (0 to ``blocks``).
      meta_hidden: hidden units of the coordinate-wise meta learners ``m`` and ``d``.
      conv: ``"xla"`` or ``"im2col"`` (see :class:`jaxmeta.models.Conv3x3`).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> model = MetaNet(ways=3, features=8, blocks=2)
      >>> sx, sy, qx = jnp.zeros((3, 12, 12, 1)), jnp.arange(3), jnp.zeros((4, 12, 12, 1))
      >>> params = jax.jit(model.init)(jax.random.key(0), sx, sy, qx)["params"]
      >>> jax.jit(model.apply)({"params": params}, sx, sy, qx).shape
      (4, 3)
    """

    ways: int
    features: int = 64
    blocks: int = 4
    fast_blocks: int = 1
    meta_hidden: int = 20
    conv: str = "xla"

    def _split(self, with_head: bool):
        names = [f"block_{i}" for i in range(self.blocks)]
        cut = self.blocks - self.fast_blocks
        return names[:cut], names[cut:] + (["head"] if with_head else [])

    @nn.compact
    def episode_state(self, support_inputs, support_labels, query_inputs) -> MetaNetState:
        """Every intermediate of one episode (see the module docstring)."""
        if self.conv not in CONV_IMPLEMENTATIONS:
            raise ValueError(f"conv must be one of {CONV_IMPLEMENTATIONS}, got {self.conv!r}.")
        if not 0 <= self.fast_blocks <= self.blocks:
            raise ValueError(f"fast_blocks must be between 0 and blocks={self.blocks}, got {self.fast_blocks}.")
        write = CoordinatewiseMLP(self.meta_hidden, name="m")
        task_writer = CoordinatewiseMLP(self.meta_hidden, name="d")
        support, query = (images_as_float(x) for x in (support_inputs, query_inputs))
        if support.ndim != 4 or query.shape[1:] != support.shape[1:]:
            raise ValueError(f"MetaNet expects images [N, H, W, C] for both sets, got support {support.shape} and "
                             f"query {query.shape}; add a channel axis with x[..., None].")
        n = support.shape[0]
        if n < 2:
            raise ValueError(f"MetaNet's verification loss pairs support examples: it needs at least 2, got {n}.")
        shape = support.shape[1:]
        base = self.param("base", lambda key: init_layers(key, shape, features=self.features, blocks=self.blocks,
                                                          outputs=self.ways))
        embed = self.param("embed", lambda key: init_layers(key, shape, features=self.features, blocks=self.blocks))
        strength = self.param("strength", nn.initializers.zeros, ())
        dim = self.features * (shape[0] >> self.blocks) * (shape[1] >> self.blocks)
        verify = self.param("verify", lambda key: {"kernel": nn.initializers.lecun_normal()(key, (dim, 1)),
                                                   "bias": jnp.zeros(1)})
        run = lambda layers, x, names, **fast: apply_layers(layers, x, names, implementation=self.conv, **fast)  # noqa: E731

        # Task-level fast weights Q* of the representation function, from verification-loss gradients.
        slow_names, fast_names = self._split(with_head=False)
        support_u = run(embed, support, slow_names)
        query_u = run(embed, query, slow_names)
        embed_tail = {name: embed[name] for name in fast_names}
        support_labels = jnp.asarray(support_labels)
        same = (support_labels[:, None] == support_labels[None, :]).astype(support.dtype)
        others = 1.0 - jnp.eye(n, dtype=support.dtype)

        def verification_loss(tail, i):
            u = run(tail, support_u, fast_names).reshape(n, -1)
            logits = (jnp.abs(u[i] - u) @ verify["kernel"] + verify["bias"])[:, 0]
            bce = optax.sigmoid_binary_cross_entropy(logits, same[i])
            return jnp.sum(others[i] * bce) / (n - 1)

        embed_grads = jax.vmap(jax.grad(verification_loss), in_axes=(None, 0))(embed_tail, jnp.arange(n))
        task_fast = jax.tree.map(lambda g: task_writer(preprocess_gradient(g)).mean(0, keepdims=True),
                                 embed_grads)
        ones = lambda x: jnp.ones((x.shape[0], 1), x.dtype)  # noqa: E731
        support_keys = run(embed_tail, support_u, fast_names, fast=task_fast, mixing=ones(support_u))
        query_keys = run(embed_tail, query_u, fast_names, fast=task_fast, mixing=ones(query_u))
        support_keys, query_keys = support_keys.reshape(n, -1), query_keys.reshape(query.shape[0], -1)

        # Example-level fast weights W*_i of the base learner, written to the memory.
        slow_names, fast_names = self._split(with_head=True)
        support_b = run(base, support, slow_names)
        query_b = run(base, query, slow_names)
        base_tail = {name: base[name] for name in fast_names}

        def example_loss(tail, x, label):
            logits = run(tail, x[None], fast_names)[0]
            return optax.softmax_cross_entropy_with_integer_labels(logits, label)

        base_grads = jax.vmap(jax.grad(example_loss), in_axes=(None, 0, 0))(base_tail, support_b, support_labels)
        memory = jax.tree.map(lambda g: write(preprocess_gradient(g)), base_grads)

        # Reading: attention over the support keys mixes the stored fast weights per query.
        beta = 1.0 + jax.nn.softplus(strength)
        attention = jax.nn.softmax(beta * cosine_similarities(query_keys, support_keys), axis=-1)
        logits = run(base_tail, query_b, fast_names, fast=memory, mixing=attention)
        return MetaNetState(task_fast, memory, support_keys, query_keys, attention, logits)

    def __call__(self, support_inputs, support_labels, query_inputs):
        return self.episode_state(support_inputs, support_labels, query_inputs).logits

