"""Do jaxmeta and learn2learn compute the same MAML meta-gradient on a real Omniglot task?

A probe: the conv-4 is initialised by PyTorch (``torch_maml.conv4``), its weights
are copied into jaxmeta's ``Conv4`` (kernels ``[O, C, 3, 3] -> [3, 3, C, O]``),
and both frameworks compute, in float64, the query loss after one inner step at
lr 0.4 and its gradient with respect to every initial parameter on the first
tasks of ``omniglot.py``'s first meta-step. It prints the largest difference
per parameter, in units of the task's largest gradient entry; they agree to
rounding if the two implement the same function (batch statistics, pooling,
loss, inner update). The conv biases' gradients are zero in exact arithmetic
(the batch norm after each conv removes a constant), so theirs are round-off
in both frameworks.

    JAXMETA_DATA=../shared/data .venv/bin/python benchmarks/experiments/omniglot_learning/same_step.py
"""

import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/: torch_maml's conv-4

import jaxmeta  # noqa: E402
import common  # noqa: E402
import torch_maml  # noqa: E402
from jaxmeta import Task  # noqa: E402
from jaxmeta.models import Conv4, functional  # noqa: E402
from jaxmeta.training.fit import step_keys  # noqa: E402


def flax_tree(pairs):
    """The Flax parameter tree of ``torch_maml.conv4``'s ``(weight, bias)`` arrays, in layer order."""
    params = {}
    for block in range(4):
        (kernel, bias), (scale, offset) = pairs[2 * block], pairs[2 * block + 1]
        params[f"block_{block}"] = {"conv": {"kernel": kernel.transpose(2, 3, 1, 0), "bias": bias},
                                    "norm": {"scale": scale, "bias": offset}}
    params["head"] = {"kernel": pairs[-1][0].T, "bias": pairs[-1][1]}
    return params


def layer_arrays(model, gradient=False):
    """``(weight, bias)`` of each layer with weights (or their ``.grad``), as float64 numpy."""
    pick = (lambda p: p.grad) if gradient else (lambda p: p)
    return [tuple(pick(p).detach().double().numpy() for p in (m.weight, m.bias)) for m in model if hasattr(m, "weight")]


def main():
    import learn2learn
    import torch

    jax.config.update("jax_enable_x64", True)  # here, not at import: learn2learn_curve.py imports this module

    torch.manual_seed(0)
    model = torch_maml.conv4(5).double()
    sampler = common.omniglot_training_sampler(4, ways=5, shots=1, queries=15)
    tasks = jax.device_get(sampler(step_keys(jax.random.split(jax.random.key(0), 4)[1], 0)[0]))
    torch_tasks = torch_maml.as_torch_tasks(torch, tasks, torch.float64)
    as_float = lambda x: np.asarray(x, np.float64) / 255  # noqa: E731

    maml = learn2learn.algorithms.MAML(model, lr=0.4)
    loss_fn = jaxmeta.classification_loss(functional(Conv4(num_classes=5)))
    learner = jaxmeta.maml(loss_fn, inner_lr=0.4, inner_steps=1)
    params = flax_tree(layer_arrays(model))
    worst = 0.0
    for t in range(4):
        x_s, y_s = as_float(tasks.support[0][t]), np.asarray(tasks.support[1][t])
        x_q, y_q = as_float(tasks.query[0][t]), np.asarray(tasks.query[1][t])
        model.zero_grad()
        learner_t = maml.clone()
        torch_x_s, torch_y_s, torch_x_q, torch_y_q = torch_tasks[t]
        learner_t.adapt(torch.nn.functional.cross_entropy(learner_t(torch_x_s), torch_y_s))
        torch_loss = torch.nn.functional.cross_entropy(learner_t(torch_x_q), torch_y_q)
        torch_loss.backward()
        reference = flax_tree(layer_arrays(model, gradient=True))
        task = Task(support=(x_s, y_s), query=(x_q, y_q))
        grad, metrics = learner.task_grad(learner.init(params), task, jax.random.key(0))
        print(f"task {t}: query loss torch {torch_loss.item():.12f} jaxmeta {float(metrics['loss']):.12f}")
        scale = max(float(np.abs(g).max()) for g in jax.tree.leaves(reference))
        for path, ours in jax.tree_util.tree_leaves_with_path(grad):
            theirs = reference
            for entry in path:
                theirs = theirs[entry.key]
            difference = float(np.abs(np.asarray(ours) - theirs).max()) / scale
            worst = max(worst, difference)
            if t == 0:
                print(f"  {jax.tree_util.keystr(path):36s} max |g_jax - g_torch| = {difference:.1e} max |g|, "
                      f"max |g_torch| = {float(np.abs(theirs).max()):.1e}")
    print(f"largest difference over 4 tasks: {worst:.1e} of the largest gradient entry")


if __name__ == "__main__":
    main()
