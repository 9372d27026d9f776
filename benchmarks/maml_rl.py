"""MAML for reinforcement learning on 2D navigation (Finn et al., 2017, section 5.3 and Figure 4).

    .venv/bin/python benchmarks/maml_rl.py                 # the protocol below; a killed run continues
    .venv/bin/python benchmarks/maml_rl.py --quick         # a smoke run into runs/maml-rl-quick/

Protocol (the paper's, as in its reference code): goals uniform in [-0.5, 0.5]^2, the agent starting at the
origin, horizon 100, actions clipped to [-0.1, 0.1], reward the negative distance to the goal
(jaxmeta.rl.navigation); a Gaussian policy with two hidden layers of 100 ReLU units and a state-independent
log standard deviation (initial std 1); 20 trajectories per task for each inner step and for the
meta-objective; one inner policy-gradient step of size 0.1 on the DiCE surrogate (``--estimator``) with the
linear feature baseline, discount 0.99 and the advantages standardised over the batch's steps with the sum
over time replaced by the mean over steps (``normalize=True``: the reference code's scale, for which the
step size 0.1 is meant); meta-batches of 20 tasks; the outer update by TRPO (max KL 0.01,
10 conjugate-gradient iterations, damping 1e-5, line search of 15 steps of ratio 0.8), for ``--iterations``
meta-iterations (the paper: up to 500) or ``--budget-minutes``.

Baselines, trained with the same number of iterations and the same TRPO settings: ``pretrained``, one policy
trained by multi-task TRPO on tasks of the same distribution without adaptation (the paper's "pretrained on
all tasks"), and ``random``, the randomly initialised policy. All three are tested on ``--test-tasks``
held-out goals: the average return (undiscounted, per trajectory, 20 trajectories) before adaptation and after
1, 2 and 3 policy-gradient steps of size 0.1 then 0.05, each step on 20 fresh trajectories of the current
policy (the paper's Figure 4). Mean and 95% CI over the test goals.

Speed, in the same run: environment steps per second of the vmapped rollout (20 tasks x 20 trajectories x
100 steps, every step counted, also after a trajectory ended) and seconds per TRPO meta-iteration, medians
of 5 timed calls after a warm-up.

Writes benchmarks/results/maml_rl.{json,md,png}: JSON key ``navigation`` with ``returns_by_step`` for
``maml``, ``pretrained`` and ``random``; the figure shows the returns against adaptation steps and sampled
trajectories of the meta-trained policy before and after adaptation for four goals.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import jaxmeta  # noqa: E402
from jaxmeta.rl import (GaussianMLPPolicy, PolicyGradientAdaptation, adaptation_rollouts,  # noqa: E402
                        gaussian_policy, init_trpo_state, make_trpo_meta_step, navigation, returns_by_step, rl_tasks,
                        rollout_sampler)
from jaxmeta.training import train  # noqa: E402

TEST_RATES = (0.1, 0.05, 0.05)  # the paper's test: 0.1 for the first step, 0.05 after
METHODS = ("maml", "pretrained", "random")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=500, help="meta-iterations (the paper: up to 500)")
    parser.add_argument("--budget-minutes", type=float, default=None, help="training time of each policy")
    parser.add_argument("--meta-batch", type=int, default=20, help="tasks per meta-iteration")
    parser.add_argument("--trajectories", type=int, default=20, help="trajectories per task and inner step")
    parser.add_argument("--horizon", type=int, default=100)
    parser.add_argument("--hidden", type=int, nargs="+", default=[100, 100])
    parser.add_argument("--estimator", default="dice", choices=["dice", "lvc", "naive"])
    parser.add_argument("--test-tasks", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke run of every part into runs/maml-rl-quick")
    parser.add_argument("--run-dir", type=Path, default=None, help="default runs/maml-rl(-quick)")
    parser.add_argument("--results-dir", type=Path, default=None)
    parser.add_argument("--no-progress", action="store_true")
    if "--quick" in (sys.argv[1:] if argv is None else argv):  # small defaults; options given still count
        parser.set_defaults(iterations=2, meta_batch=2, trajectories=3, horizon=10, hidden=[8], test_tasks=3)
    args = parser.parse_args(argv)
    args.run_dir = args.run_dir or Path("runs") / ("maml-rl-quick" if args.quick else "maml-rl")
    args.results_dir = args.results_dir or (args.run_dir / "results" if args.quick else common.RESULTS_DIR)
    return args


def setup(args):
    env = navigation(horizon=args.horizon)
    policy = gaussian_policy(GaussianMLPPolicy(action_size=2, hidden=tuple(args.hidden)))
    inner = PolicyGradientAdaptation(policy, rollout_sampler(env, policy, num_trajectories=args.trajectories),
                                     estimator=args.estimator, normalize=True)
    return env, policy, inner


def train_policy(args, name, env, step, params):
    config = {"method": name, "meta_batch": args.meta_batch, "trajectories": args.trajectories,  # the run's identity:
              "horizon": args.horizon, "hidden": args.hidden, "estimator": args.estimator,  # more iterations or
              "seed": args.seed}  # minutes extend it
    result = train(step, init_trpo_state(params), lambda key: rl_tasks(env.sample_tasks(key, args.meta_batch)),
                   key=jax.random.key(args.seed + 1), num_steps=args.iterations, run_dir=args.run_dir / name,
                   config=config, resume=(args.run_dir / name / "checkpoints").exists(),
                   checkpoint_every=10, steps_per_call=1, progress=not args.no_progress, description=name,
                   budget_seconds=None if args.budget_minutes is None else 60 * args.budget_minutes)
    train_records = [r for r in result.records if r["kind"] == "train"]
    return result.state.meta_params, {"meta_iterations": int(result.state.step), "stopped": result.stopped,
                                      "train_seconds": train_records[-1]["elapsed_seconds"] if train_records else 0}


def median_seconds(function, *arguments, reps=5):
    jax.block_until_ready(function(*arguments))
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        jax.block_until_ready(function(*arguments))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speed(args, env, inner, step, params):
    goals = env.sample_tasks(jax.random.key(7), args.meta_batch)
    sample = jax.jit(jax.vmap(inner.sampler, in_axes=(None, 0, 0)))
    rollout_seconds = median_seconds(sample, params, goals, jax.random.split(jax.random.key(8), args.meta_batch))
    step_seconds = median_seconds(step, init_trpo_state(params), rl_tasks(goals), jax.random.key(9))
    env_steps = args.meta_batch * args.trajectories * args.horizon
    return {"env_steps_per_rollout_call": env_steps, "rollout_seconds": rollout_seconds,
            "env_steps_per_second": env_steps / rollout_seconds, "seconds_per_meta_iteration": step_seconds,
            "meta_iterations_per_second": 1 / step_seconds}


def markdown(record: dict) -> str:
    navigation = record["navigation"]
    rows = [[name, *(common.mean_ci(m, c, 1) for m, c in zip(r["mean"], r["ci"]))]
            for name, r in navigation["returns_by_step"].items()]
    fast, config = navigation["speed"], navigation["config"]
    lines = ["# MAML-RL on 2D navigation: average return by adaptation step", "",
             f"Host: {common.hardware(record['environment'])}. Mean ± 95% CI over {navigation['test_tasks']} held-out "
             f"goals ({config['trajectories']} trajectories each, horizon {config['horizon']}, undiscounted). Steps of "
             "size 0.1 then 0.05. Generated by `benchmarks/maml_rl.py`; the protocol is in its docstring.", "",
             *common.markdown_table(["policy", "0 steps", "1 step", "2 steps", "3 steps"], rows), ""]
    for name in METHODS[:2]:
        trained = navigation["training"][name]
        lines.append(f"- {name}: {trained['meta_iterations']} TRPO iterations in {trained['train_seconds'] / 60:.1f} "
                     f"min ({trained['stopped']})")
    lines += [f"- speed: {fast['env_steps_per_second']:,.0f} environment steps per second in the vmapped rollout "
              f"({fast['env_steps_per_rollout_call']:,} steps per call), "
              f"{fast['seconds_per_meta_iteration']:.2f} s per TRPO meta-iteration (medians of 5 calls)", "",
              "Finn et al. (2017, Figure 4) plot the same curve for the same protocol (they give no table).", ""]
    return "\n".join(lines)


def plot(path, record, trajectories, goals):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 4.6))
    grid = fig.add_gridspec(2, 4, width_ratios=[2.2, 0.05, 1, 1])
    curve = fig.add_subplot(grid[:, 0])
    for name, r in record["navigation"]["returns_by_step"].items():
        curve.errorbar(range(len(r["mean"])), r["mean"], yerr=r["ci"], capsize=3, marker="o", label=name)
    curve.set_xlabel("policy-gradient steps on the held-out goal")
    curve.set_ylabel("average return")
    curve.set_xticks(range(len(TEST_RATES) + 1))
    curve.legend()
    curve.set_title("2D navigation: return by adaptation step")
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(TEST_RATES) + 1))
    for g, goal in enumerate(goals[:4]):
        panel = fig.add_subplot(grid[g // 2, 2 + g % 2])
        for step, colour in enumerate(colours):
            positions = trajectories[g, step]
            panel.plot(positions[:, 0], positions[:, 1], color=colour, lw=1.0, label=f"{step} steps")
        panel.plot(0, 0, "ko", ms=4)
        panel.plot(*goal, "r*", ms=11)
        panel.set_xlim(-0.6, 0.6), panel.set_ylim(-0.6, 0.6), panel.set_aspect("equal")
        panel.tick_params(labelsize=7)
        if g == 0:
            panel.legend(fontsize=6, loc="lower left")
    fig.text(0.76, 0.96, "MAML's policy: a sampled trajectory after 0-3 steps (goal: red star)", ha="center",
             fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    args = parse_args(argv)
    env, policy, inner = setup(args)
    params = policy.init(jax.random.key(args.seed), jnp.zeros(2))
    trained = {"random": params}
    training = {}
    maml_step = make_trpo_meta_step(inner, inner_lr=0.1, inner_steps=1)
    trained["maml"], training["maml"] = train_policy(args, "maml", env, maml_step, params)
    trained["pretrained"], training["pretrained"] = train_policy(
        args, "pretrained", env, make_trpo_meta_step(inner, inner_steps=0), params)
    goals = env.sample_tasks(jax.random.key(args.seed + 100), args.test_tasks)
    test_key = jax.random.key(args.seed + 101)
    by_step = {}
    for name in METHODS:
        returns = np.asarray(returns_by_step(inner, trained[name], goals, test_key, TEST_RATES))
        mean, ci = jaxmeta.confidence_interval(returns)
        by_step[name] = {"mean": np.asarray(mean).tolist(), "ci": np.asarray(ci).tolist()}
        print(f"{name:10s} " + "  ".join(f"{m:7.2f} ± {c:4.2f}" for m, c in zip(by_step[name]["mean"],
                                                                            by_step[name]["ci"])))
    timing = speed(args, env, inner, maml_step, trained["maml"])
    record = {"navigation": {"returns_by_step": by_step, "test_tasks": args.test_tasks, "training": training,
                             "test_rates": list(TEST_RATES), "speed": timing,
                             "config": {k: v for k, v in vars(args).items() if k not in ("run_dir", "results_dir")}},
              "environment": common.environment()}
    shown = min(4, args.test_tasks)
    positions = jax.jit(jax.vmap(lambda goal, k: adaptation_rollouts(inner, trained["maml"], goal, k, TEST_RATES)
                                 .observations[:, 0]))(goals[:shown], jax.random.split(test_key, shown))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    common.write_json(args.results_dir / "maml_rl.json", record)
    (args.results_dir / "maml_rl.md").write_text(markdown(record))
    plot(args.results_dir / "maml_rl.png", record, np.asarray(positions), np.asarray(goals[:shown]))
    print(markdown(record))
    return record


if __name__ == "__main__":
    main()
