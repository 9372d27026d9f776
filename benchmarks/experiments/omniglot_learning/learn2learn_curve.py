"""learn2learn's second-order MAML on the same Omniglot tasks as ``benchmarks/omniglot.py``: its learning curve.

With ``--framework jaxmeta`` the same curve from jaxmeta's meta step (``Conv4(conv="im2col")``,
``make_meta_step(..., task_chunk=1)``) started from the very weights PyTorch draws for
learn2learn (copied as in ``same_step.py``), so that the two runs differ only in float32 rounding.

A probe, not a benchmark: it asks whether jaxmeta learns as much per meta-step as
learn2learn does under the 5-way 1-shot protocol (conv-4 with PyTorch's default
initialisation, meta-batch 32, 15 queries per class, 1 inner step at lr 0.4,
Adam 1e-3). The tasks are jaxmeta's: meta-step ``s`` draws its meta-batch with
the task key that ``jaxmeta.fit`` gives step ``s`` of ``omniglot.py --seed 0``
(same split, same rotations), converted to NCHW float32 in [0, 1]. It writes one
JSON line per ``--log-every`` steps with the mean query accuracy and loss after
adaptation over those steps, as ``metrics.jsonl`` of an ``omniglot.py`` run does.

    JAXMETA_DATA=../shared/data .venv/bin/python \\
        benchmarks/experiments/omniglot_learning/learn2learn_curve.py --steps 300 --out /tmp/l2l.jsonl

Needs ``make compare-env`` (torch, learn2learn).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/: torch_maml's conv-4

import common  # noqa: E402
import torch_maml  # noqa: E402
from jaxmeta.training.fit import step_keys  # noqa: E402


def learn2learn_meta_step(model):
    """``meta_step(tasks, key) -> (accuracy, loss)``: learn2learn's MAML and Adam on ``model``, in place."""
    import learn2learn
    import torch

    maml = learn2learn.algorithms.MAML(model, lr=0.4, first_order=False)
    optimizer = torch.optim.Adam(maml.parameters(), lr=1e-3)
    cross_entropy = torch.nn.functional.cross_entropy

    def meta_step(tasks, key):
        del key  # MAML's step is deterministic
        optimizer.zero_grad()
        accuracy = loss_sum = 0.0
        tasks = torch_maml.as_torch_tasks(torch, jax.device_get(tasks))
        batch = len(tasks)
        for x_s, y_s, x_q, y_q in tasks:
            learner = maml.clone()
            learner.adapt(cross_entropy(learner(x_s), y_s))
            logits = learner(x_q)
            loss = cross_entropy(logits, y_q)
            (loss / batch).backward()
            loss_sum += loss.item() / batch
            accuracy += (logits.argmax(1) == y_q).float().mean().item() / batch
        optimizer.step()
        return accuracy, loss_sum

    return meta_step


def jaxmeta_meta_step(model):
    """The same, by jaxmeta, from ``model``'s initial weights; the state is kept in the closure."""
    import optax

    import jaxmeta
    from jaxmeta.models import Conv4, functional
    from same_step import flax_tree, layer_arrays

    params = jax.tree.map(lambda w: np.asarray(w, np.float32), flax_tree(layer_arrays(model)))
    learner = jaxmeta.maml(jaxmeta.classification_loss(functional(Conv4(5, conv="im2col"))), inner_lr=0.4,
                           inner_steps=1)
    optimizer = optax.adam(1e-3)
    state = [jaxmeta.init_state(learner, optimizer, params)]
    step = jaxmeta.make_meta_step(learner, optimizer, task_chunk=1)

    def meta_step(tasks, key):
        state[0], metrics = step(state[0], tasks, key)
        return float(metrics["accuracy"]), float(metrics["loss"])

    return meta_step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--framework", choices=("learn2learn", "jaxmeta"), default="learn2learn")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    sampler = common.omniglot_training_sampler(32, ways=5, shots=1, queries=15)
    train_key = jax.random.split(jax.random.key(args.seed), 4)[1]  # as omniglot.py: init, train, val, test

    model = torch_maml.conv4(5)
    meta_step = jaxmeta_meta_step(model) if args.framework == "jaxmeta" else learn2learn_meta_step(model)
    started, window = time.perf_counter(), []
    with open(args.out, "w") as log:
        for step in range(args.steps):
            task_key, step_key = step_keys(train_key, step)
            accuracy, loss_sum = meta_step(sampler(task_key), step_key)
            window.append((accuracy, loss_sum))
            if (step + 1) % args.log_every == 0:
                record = {"step": step + 1, "kind": "train", "elapsed_seconds": time.perf_counter() - started,
                          "accuracy": float(np.mean([a for a, _ in window])),
                          "loss": float(np.mean([lo for _, lo in window]))}
                log.write(json.dumps(record) + "\n")
                log.flush()
                print(record, flush=True)
                window = []


if __name__ == "__main__":
    main()
