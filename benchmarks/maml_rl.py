"""MAML for reinforcement learning on 2D navigation and the half-cheetah families (Finn et al., 2017, section 5.3).

    .venv/bin/python benchmarks/maml_rl.py                      # 2D navigation, the protocol below
    .venv/bin/python benchmarks/maml_rl.py --env cheetah-vel     # goal velocity (brax: pip install 'jaxmeta[rl]')
    .venv/bin/python benchmarks/maml_rl.py --env cheetah-dir     # goal direction
    .venv/bin/python benchmarks/maml_rl.py --quick               # a smoke run into runs/maml-rl-quick/

A killed run continues from its checkpoints. Each ``--env`` writes its own key of the results, leaving the
others' in place.

Protocol (the paper's, as in its reference code). 2D navigation (``jaxmeta.rl.navigation``): goals uniform in
[-0.5, 0.5]^2, the agent starting at the origin, horizon 100, actions clipped to [-0.1, 0.1], reward the
negative distance to the goal, meta-batches of 20 tasks. Half-cheetah (``jaxmeta.rl.half_cheetah`` on brax's
``--backend``, by default the ``generalized`` pipeline, MuJoCo's dynamics): a goal velocity in U[0, 2] or a
direction +-1 per task, horizon 200, meta-batches of 40 tasks. For both: a Gaussian policy with two hidden
layers of 100 ReLU units and a state-independent log standard deviation (initial std 1); 20 trajectories per
task for each inner step and for the meta-objective; one inner policy-gradient step of size 0.1 on the DiCE
surrogate (``--estimator``) with the linear feature baseline, discount 0.99 and the advantages standardised
over the batch's steps with the sum over time replaced by the mean over steps (``normalize=True``: the
reference code's scale, for which the step size 0.1 is meant); the outer update by TRPO (max KL 0.01,
10 conjugate-gradient iterations, damping 1e-5, line search of 15 steps of ratio 0.8), for ``--iterations``
meta-iterations (the paper: up to 500) or ``--budget-minutes``.

Baselines, trained with the same number of iterations and the same TRPO settings: ``pretrained``, one policy
trained by multi-task TRPO on tasks of the same distribution without adaptation (the paper's "pretrained on
all tasks"), and ``random``, the randomly initialised policy. All three are tested on ``--test-tasks``
held-out goals: the average return (undiscounted, per trajectory, 20 trajectories) before adaptation and after
1, 2 and 3 policy-gradient steps of size 0.1 then 0.05, each step on 20 fresh trajectories of the current
policy (the paper's Figure 4). Mean and 95% CI over the test goals.

Speed, in the same run: environment steps per second of the vmapped rollout (a meta-batch of tasks x
trajectories x horizon steps, every step counted, also after a trajectory ended) and seconds per TRPO
meta-iteration, medians of 5 timed calls after a warm-up; from them, the hours the paper's full protocol
(MAML's 500 iterations at the paper's meta-batch, 20 trajectories and horizon) would take on the same host.

Writes benchmarks/results/maml_rl.{json,md} with a key per environment (``navigation``, ``cheetah-vel``,
``cheetah-dir``), each with ``returns_by_step`` for ``maml``, ``pretrained`` and ``random``, its settings, host
and speed, and a figure per environment: ``maml_rl.png`` (navigation: the returns against adaptation steps and
sampled trajectories of the meta-trained policy before and after adaptation for four goals) and
``maml_rl_<env>.png`` (half-cheetah: the returns, and the forward velocity along a trajectory before and after
adaptation for three tasks).
"""

import argparse
import statistics
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import jaxmeta  # noqa: E402
from jaxmeta.rl import (BRAX_BACKENDS, GaussianMLPPolicy, PolicyGradientAdaptation,  # noqa: E402
                        adaptation_rollouts, gaussian_policy, half_cheetah, init_trpo_state, make_trpo_meta_step,
                        navigation, returns_by_step, rl_tasks, rollout_sampler)
from jaxmeta.training import train  # noqa: E402

TEST_RATES = (0.1, 0.05, 0.05)  # the paper's test: 0.1 for the first step, 0.05 after
METHODS = ("maml", "pretrained", "random")
ENVIRONMENTS = {  # the paper's meta-batch and horizon for each family
    "navigation": {"meta_batch": 20, "horizon": 100},
    "cheetah-vel": {"meta_batch": 40, "horizon": 200, "task": "velocity"},
    "cheetah-dir": {"meta_batch": 40, "horizon": 200, "task": "direction"},
}
PAPER_ITERATIONS, PAPER_TRAJECTORIES = 500, 20
FORWARD_VELOCITY = 8  # in a half-cheetah observation: the joint positions but the forward one (8), then qd[0]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="navigation", choices=list(ENVIRONMENTS))
    parser.add_argument("--backend", default="generalized", choices=BRAX_BACKENDS, help="brax's (half-cheetah)")
    parser.add_argument("--iterations", type=int, default=PAPER_ITERATIONS, help="meta-iterations (the paper: up "
                        "to 500)")
    parser.add_argument("--budget-minutes", type=float, default=None, help="training time of each policy")
    parser.add_argument("--meta-batch", type=int, default=None, help="tasks per meta-iteration (the paper: 20 for "
                        "navigation, 40 for the half-cheetah)")
    parser.add_argument("--trajectories", type=int, default=PAPER_TRAJECTORIES,
                        help="trajectories per task and inner step")
    parser.add_argument("--horizon", type=int, default=None, help="the paper: 100 for navigation, 200 for the "
                        "half-cheetah")
    parser.add_argument("--hidden", type=int, nargs="+", default=[100, 100])
    parser.add_argument("--estimator", default="dice", choices=["dice", "lvc", "naive"])
    parser.add_argument("--test-tasks", type=int, default=40)
    parser.add_argument("--test-chunk", type=int, default=10, help="test tasks per compiled call (the results do "
                        "not depend on it; XLA's CPU runtime hung on all 40 half-cheetah tasks in one call)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke run of every part into runs/maml-rl-quick")
    parser.add_argument("--run-dir", type=Path, default=None, help="default runs/maml-rl(-quick)[-<env>]")
    parser.add_argument("--results-dir", type=Path, default=None)
    parser.add_argument("--no-progress", action="store_true")
    if "--quick" in (sys.argv[1:] if argv is None else argv):  # small defaults; options given still count
        parser.set_defaults(iterations=2, meta_batch=2, trajectories=3, horizon=10, hidden=[8], test_tasks=3)
    args = parser.parse_args(argv)
    for name, value in ENVIRONMENTS[args.env].items():
        if name != "task" and getattr(args, name) is None:
            setattr(args, name, value)
    if args.run_dir is None:
        suffix = "" if args.env == "navigation" else f"-{args.env}"
        args.run_dir = Path("runs") / (("maml-rl-quick" if args.quick else "maml-rl") + suffix)
    args.results_dir = args.results_dir or (args.run_dir / "results" if args.quick else common.RESULTS_DIR)
    return args


def setup(args):
    if args.env == "navigation":
        env = navigation(horizon=args.horizon)
    else:
        env = half_cheetah(ENVIRONMENTS[args.env]["task"], horizon=args.horizon, backend=args.backend)
    policy = gaussian_policy(GaussianMLPPolicy(action_size=env.action_size, hidden=tuple(args.hidden)))
    inner = PolicyGradientAdaptation(policy, rollout_sampler(env, policy, num_trajectories=args.trajectories),
                                     estimator=args.estimator, normalize=True)
    return env, policy, inner


def identity(args, method: str) -> dict:
    """The settings that make a run: more iterations or minutes extend it, anything else is another run."""
    config = {"method": method, "meta_batch": args.meta_batch, "trajectories": args.trajectories,
              "horizon": args.horizon, "hidden": args.hidden, "estimator": args.estimator, "seed": args.seed}
    if args.env != "navigation":
        config.update(env=args.env, backend=args.backend)
    return config


def train_policy(args, name, env, step, params):
    result = train(step, init_trpo_state(params), lambda key: rl_tasks(env.sample_tasks(key, args.meta_batch)),
                   key=jax.random.key(args.seed + 1), num_steps=args.iterations, run_dir=args.run_dir / name,
                   config=identity(args, name),
                   resume=(args.run_dir / name / "checkpoints").exists(),
                   checkpoint_every=10, steps_per_call=1, progress=not args.no_progress, description=name,
                   budget_seconds=None if args.budget_minutes is None else 60 * args.budget_minutes)
    train_records = [r for r in result.records if r["kind"] == "train"]
    return result.state.meta_params, {"meta_iterations": int(result.state.step), "stopped": result.stopped,
                                      "train_seconds": train_records[-1]["elapsed_seconds"] if train_records else 0}


def speed(args, env, inner, step, params):
    goals = env.sample_tasks(jax.random.key(7), args.meta_batch)
    sample = jax.jit(jax.vmap(inner.sampler, in_axes=(None, 0, 0)))
    rollout_seconds = statistics.median(common.call_seconds(sample, params, goals,
                                                          jax.random.split(jax.random.key(8), args.meta_batch), reps=5))
    step_seconds = statistics.median(common.call_seconds(step, init_trpo_state(params), rl_tasks(goals),
                                                       jax.random.key(9), reps=5))
    env_steps = args.meta_batch * args.trajectories * args.horizon
    paper = ENVIRONMENTS[args.env]
    paper_scale = paper["meta_batch"] * PAPER_TRAJECTORIES * paper["horizon"] / env_steps
    return {"env_steps_per_rollout_call": env_steps, "rollout_seconds": rollout_seconds,
            "env_steps_per_second": env_steps / rollout_seconds, "seconds_per_meta_iteration": step_seconds,
            "meta_iterations_per_second": 1 / step_seconds,
            # the meta-iteration's cost grows with the environment steps it samples and scores
            "paper_protocol_hours": step_seconds * paper_scale * PAPER_ITERATIONS / 3600}


def settings_line(family: str, config: dict) -> str:
    physics = "" if family == "navigation" else f", brax's {config['backend']} pipeline"
    return (f"{family}{physics}: meta-batches of {config['meta_batch']} tasks, {config['trajectories']} trajectories "
            f"each, horizon {config['horizon']}, hidden layers {config['hidden']}, {config['estimator']} surrogate")


def markdown(record: dict) -> str:
    lines = ["# MAML-RL: average return by adaptation step", "",
             "Mean ± 95% CI over the held-out tasks (the trajectories of each, undiscounted), after steps of size "
             "0.1 then 0.05. Generated by `benchmarks/maml_rl.py`; the protocol is in its docstring, and the "
             "command that made each section is under it.", ""]
    for family in ENVIRONMENTS:
        if family not in record:
            continue
        result = record[family]
        rows = [[name, *(common.mean_ci(m, c, 1) for m, c in zip(r["mean"], r["ci"]))]
                for name, r in result["returns_by_step"].items()]
        fast, config = result["speed"], result["config"]
        lines += [f"## {family}", "", f"Host: {common.hardware(result['environment'])}. "
                  f"{result['test_tasks']} held-out tasks; {settings_line(family, config)}.", "",
                  *common.markdown_table(["policy", "0 steps", "1 step", "2 steps", "3 steps"], rows), ""]
        for name in METHODS[:2]:
            trained = result["training"][name]
            lines.append(f"- {name}: {trained['meta_iterations']} TRPO iterations in "
                         f"{trained['train_seconds'] / 60:.1f} min ({trained['stopped']})")
        paper = ENVIRONMENTS[family]
        reduced = [f"{what} {config[key]} (the paper: {value})" for what, key, value in (
            ("meta-batch", "meta_batch", paper["meta_batch"]), ("trajectories", "trajectories", PAPER_TRAJECTORIES),
            ("horizon", "horizon", paper["horizon"])) if config[key] != value]
        reduced.append(f"{result['training']['maml']['meta_iterations']} iterations (the paper: up to "
                       f"{PAPER_ITERATIONS})")
        if len(reduced) > 1:  # the navigation run's 300 iterations are within the paper's "up to 500"
            lines.append(f"- **reduced scale**: {', '.join(reduced)}")
        lines += [f"- speed: {fast['env_steps_per_second']:,.0f} environment steps per second in the vmapped "
                  f"rollout ({fast['env_steps_per_rollout_call']:,} steps per call), "
                  f"{fast['seconds_per_meta_iteration']:.2f} s per TRPO meta-iteration (medians of 5 calls); MAML's "
                  f"training by the paper's protocol ({PAPER_ITERATIONS} iterations of "
                  f"{ENVIRONMENTS[family]['meta_batch']} tasks x {PAPER_TRAJECTORIES} trajectories x "
                  f"{ENVIRONMENTS[family]['horizon']} steps) would take "
                  f"about {fast['paper_protocol_hours']:.1f} h on this host",
                  f"- command: `{result['command']}`", ""]
    lines += ["Finn et al. (2017) plot the same curves for the same protocols (Figures 4 and 5: navigation and "
              "the half-cheetah); they give no table.", ""]
    return "\n".join(lines)


def plot_returns(axis, result, title):
    for name, r in result["returns_by_step"].items():
        axis.errorbar(range(len(r["mean"])), r["mean"], yerr=r["ci"], capsize=3, marker="o", label=name)
    axis.set_xlabel("policy-gradient steps on the held-out task")
    axis.set_ylabel("average return")
    axis.set_xticks(range(len(TEST_RATES) + 1))
    axis.legend()
    axis.set_title(title)


def plot(path, family, result, observations, tasks):
    """The returns by adaptation step, and what the meta-trained policy does before and after adapting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = plt.cm.viridis(np.linspace(0, 0.9, len(TEST_RATES) + 1))
    labels = [common.count(step, "step") for step in range(len(colours))]
    if family == "navigation":
        fig = plt.figure(figsize=(12, 4.6))
        grid = fig.add_gridspec(2, 4, width_ratios=[2.2, 0.05, 1, 1])
        plot_returns(fig.add_subplot(grid[:, 0]), result, "2D navigation: return by adaptation step")
        for g, goal in enumerate(tasks[:4]):
            panel = fig.add_subplot(grid[g // 2, 2 + g % 2])
            for step, colour in enumerate(colours):
                positions = observations[g, step]
                panel.plot(positions[:, 0], positions[:, 1], color=colour, lw=1.0, label=labels[step])
            panel.plot(0, 0, "ko", ms=4)
            panel.plot(*goal, "r*", ms=11)
            panel.set_xlim(-0.6, 0.6), panel.set_ylim(-0.6, 0.6), panel.set_aspect("equal")
            panel.tick_params(labelsize=7)
        # one legend for the four panels, below them: inside a panel it could cover a goal
        fig.legend(*panel.get_legend_handles_labels(), loc="lower center", bbox_to_anchor=(0.76, 0.0),
                   ncol=len(colours), fontsize=7, frameon=False)
        fig.text(0.76, 0.96, "MAML's policy: a sampled trajectory after 0-3 steps (goal: red star)", ha="center",
                 fontsize=9)
    else:
        shown = min(3, len(tasks))
        fig, axes = plt.subplots(1, 1 + shown, figsize=(4.2 * (1 + shown), 4.2))
        plot_returns(axes[0], result, f"{family}: return by adaptation step")
        what = "goal velocity" if family == "cheetah-vel" else "direction"
        for g in range(shown):
            panel = axes[1 + g]
            for step, colour in enumerate(colours):
                panel.plot(observations[g, step][:, FORWARD_VELOCITY], color=colour, lw=1.0, label=labels[step])
            panel.axhline(tasks[g] if family == "cheetah-vel" else 0.0, color="r", ls="--", lw=1.0)
            panel.set_title(f"MAML's policy, {what} {tasks[g]:+.2f}: one trajectory", fontsize=9)
            panel.set_xlabel("time step")
            panel.set_ylabel("forward velocity")
            if g == 0:
                panel.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.05 if family == "navigation" else 0, 1, 0.95))  # room for the legend below
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    args = parse_args(argv)
    env, policy, inner = setup(args)
    params = policy.init(jax.random.key(args.seed), jnp.zeros(env.observation_size))
    trained = {"random": params}
    training = {}
    maml_step = make_trpo_meta_step(inner, inner_lr=0.1, inner_steps=1)
    trained["maml"], training["maml"] = train_policy(args, "maml", env, maml_step, params)
    trained["pretrained"], training["pretrained"] = train_policy(
        args, "pretrained", env, make_trpo_meta_step(inner, inner_steps=0), params)
    tasks = env.sample_tasks(jax.random.key(args.seed + 100), args.test_tasks)
    test_key = jax.random.key(args.seed + 101)
    by_step = {}
    for name in METHODS:
        returns = np.asarray(returns_by_step(inner, trained[name], tasks, test_key, TEST_RATES,
                                             task_chunk=args.test_chunk))
        mean, ci = jaxmeta.confidence_interval(returns)
        by_step[name] = {"mean": np.asarray(mean).tolist(), "ci": np.asarray(ci).tolist()}
        print(f"{name:10s} " + "  ".join(f"{m:7.2f} ± {c:4.2f}" for m, c in zip(by_step[name]["mean"],
                                                                            by_step[name]["ci"])))
    result = {"returns_by_step": by_step, "test_tasks": args.test_tasks, "training": training,
              "test_rates": list(TEST_RATES), "speed": speed(args, env, inner, maml_step, trained["maml"]),
              "config": {k: v for k, v in vars(args).items() if k not in ("run_dir", "results_dir")},
              "environment": common.environment(),
              "command": " ".join([".venv/bin/python benchmarks/maml_rl.py", *(sys.argv[1:] if argv is None
                                                                               else argv)])}
    shown = min(4, args.test_tasks)
    observations = jax.jit(jax.vmap(lambda task, k: adaptation_rollouts(inner, trained["maml"], task, k, TEST_RATES)
                                    .observations[:, 0]))(tasks[:shown], jax.random.split(test_key, shown))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    record = {**common.read_json(args.results_dir / "maml_rl.json", {}), args.env: result}
    common.write_json(args.results_dir / "maml_rl.json", record)
    (args.results_dir / "maml_rl.md").write_text(markdown(record))
    figure = "maml_rl.png" if args.env == "navigation" else f"maml_rl_{args.env}.png"
    plot(args.results_dir / figure, args.env, result, np.asarray(observations), np.asarray(tasks[:shown]))
    print(markdown(record))
    return record


if __name__ == "__main__":
    main()
