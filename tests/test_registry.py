"""jaxmeta.registry: learners by name give the same learner as their factories, with their papers' settings."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmeta
from jaxmeta import registry

LOSS = jaxmeta.regression_loss(lambda w, x: jnp.tanh(x @ w))
X = jnp.linspace(-1.0, 1.0, 12).reshape(4, 3)
TASKS = jaxmeta.Task((X[None], jnp.sin(X[None, :, :1])), (X[None], jnp.cos(X[None, :, :1])))
THETA = jnp.array([[0.3], [-0.2], [0.5]])


def meta_grad(learner):
    return jaxmeta.meta_gradient(learner, learner.init(THETA), TASKS, jax.random.key(0))[0]


def test_every_name_builds_at_each_of_its_settings():
    extra = {"anil": {"head": lambda path: True}, "meta-lstm": {"key": jax.random.key(0)},
             "maml++": {"anneal_steps": 10, "first_order_steps": 10}, "taml-entropy": {"apply_fn": lambda w, x: x}}
    for name, entry in registry.RECIPES.items():
        assert entry.settings, name
        for setting in entry.settings:
            assert setting in registry.SETTINGS
            learner = registry.make(name, LOSS, setting=setting, **extra.get(name, {}))
            assert isinstance(learner, jaxmeta.MetaLearner)


def test_a_setting_gives_its_papers_values_and_overrides_win():
    by_name = registry.make("maml", LOSS, setting="omniglot-20way")
    by_hand = jaxmeta.maml(LOSS, inner_lr=0.1, inner_steps=5)
    np.testing.assert_allclose(meta_grad(by_name), meta_grad(by_hand), rtol=1e-12)
    overridden = registry.make("maml", LOSS, setting="omniglot-20way", inner_steps=2)
    np.testing.assert_allclose(meta_grad(overridden), meta_grad(jaxmeta.maml(LOSS, inner_lr=0.1, inner_steps=2)),
                               rtol=1e-12)
    assert not np.allclose(meta_grad(overridden), meta_grad(by_hand))
    assert registry.defaults("maml", "omniglot-5way").learner == {"inner_lr": 0.4, "inner_steps": 1}
    assert registry.defaults("reptile", "omniglot-20way").learner["inner_batch"] == 20


def test_the_maml_variants_by_name_are_their_factories_at_their_papers_settings():
    assert registry.defaults("cavia", "omniglot-5way").learner == {"context_size": 100, "inner_lr": 1.0,
                                                                   "inner_steps": 2}
    assert registry.defaults("cavia", "sinusoid").meta_batch == 25
    theil = registry.make("taml-theil", LOSS, setting="omniglot-5way")
    by_hand = jaxmeta.taml_inequality(jaxmeta.maml(LOSS, inner_lr=0.4), weight=1.0, measure="theil")
    tasks = jax.tree.map(lambda x: jnp.concatenate([x, 2 * x]), TASKS)  # two tasks: the penalty couples them
    grads = [jaxmeta.meta_gradient(learner, THETA, tasks, jax.random.key(0))[0] for learner in (theil, by_hand)]
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12)
    adml = registry.make("adml", LOSS, setting="omniglot-5way")
    np.testing.assert_allclose(meta_grad(adml), meta_grad(jaxmeta.adml(LOSS, epsilon=0.1, inner_lr=0.4)), rtol=1e-12)


def test_a_named_inner_optimizer_is_the_optax_one():
    named = registry.make("maml", LOSS, inner_optimizer="adam", inner_lr=0.05, inner_beta1=0.5, inner_steps=3)
    built = jaxmeta.maml(LOSS, inner_optimizer=optax.adam(0.05, b1=0.5), inner_steps=3)
    np.testing.assert_allclose(meta_grad(named), meta_grad(built), rtol=1e-12)
    sgd = registry.make("maml", LOSS, inner_optimizer="sgd", inner_lr=0.05, inner_steps=3)
    np.testing.assert_allclose(meta_grad(sgd), meta_grad(jaxmeta.maml(LOSS, inner_lr=0.05, inner_steps=3)), rtol=1e-12)


def test_metasgd_scales_a_named_direction_by_its_learned_rates():
    named = registry.make("metasgd", LOSS, inner_optimizer="adam", inner_beta1=0.0, lr_init=0.05, inner_steps=2)
    built = jaxmeta.metasgd(LOSS, lr_init=0.05, inner_steps=2,
                            inner_optimizer=optax.chain(optax.scale_by_adam(b1=0.0), optax.scale(-1.0)))
    np.testing.assert_allclose(jax.tree.leaves(meta_grad(named)), jax.tree.leaves(meta_grad(built)), rtol=1e-12)


def test_a_named_learned_rule_is_the_jaxmeta_inner_one_and_its_setting_clips_the_meta_gradient():
    for name, rule in (("meta-curvature", jaxmeta.inner.meta_curvature(0.05)), ("lslr", jaxmeta.inner.lslr(2, 0.05))):
        named = registry.make("maml", LOSS, inner_optimizer=name, inner_lr=0.05, inner_steps=2)
        built = jaxmeta.maml(LOSS, inner_optimizer=rule, inner_steps=2)
        chex.assert_trees_all_close(meta_grad(named), meta_grad(built), rtol=1e-12)
    curvature = registry.defaults("maml-meta-curvature", "sinusoid")
    assert curvature.learner == {"inner_lr": 0.01, "inner_steps": 5, "inner_optimizer": "meta-curvature"}
    assert (curvature.clip_norm, curvature.meta_batch, curvature.meta_lr) == (10.0, 25, 1e-3)
    assert registry.defaults("maml", "sinusoid").clip_norm is None


@pytest.mark.parametrize("call, message", [
    (lambda: registry.make("mamll", LOSS), "No learner is called 'mamll'"),
    (lambda: registry.make("maml++", LOSS, setting="sinusoid", anneal_steps=1, first_order_steps=1),
     "has no published setting 'sinusoid'"),
    (lambda: registry.make("maml", LOSS, inner_optimizer="rmsprop", inner_lr=0.1),
     "'sgd', 'adam', 'momentum', 'lslr' or 'meta-curvature'"),
    (lambda: registry.make("metasgd", LOSS, inner_optimizer="lslr", lr_init=0.1), "Meta-SGD learns its own rates"),
    (lambda: registry.make("maml", LOSS, inner_optimizer="meta-curvature", inner_lr=0.1, inner_beta1=0.0),
     "configure 'adam' or 'momentum', not the learned rule 'meta-curvature'"),
    (lambda: registry.make("maml", LOSS, inner_optimizer="lslr"), "needs inner_lr=, the rate the rule starts from"),
    (lambda: registry.make("maml", LOSS, inner_optimizer=optax.sgd(0.1), inner_beta1=0.0), "configure a named"),
    (lambda: registry.make("maml", LOSS, inner_optimizer="adam"), "needs inner_lr="),
])
def test_bad_requests_say_what_to_do(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_metric_models_by_name_have_their_papers_networks():
    import jaxmeta.metric as metric
    from jaxmeta.memory import MetaNet

    expected = {"protonet": metric.PrototypicalNetwork, "gaussian-protonet": metric.GaussianPrototypicalNetwork,
                "matching": metric.MatchingNetwork, "matching-fce": metric.MatchingNetwork,
                "relation": metric.RelationNetwork, "siamese": metric.SiameseNetwork, "metanet": MetaNet}
    assert set(expected) == set(registry.METRIC_NAMES)
    for name, kind in expected.items():
        assert type(registry.metric_model(name, ways=5, features=8)) is kind, name
    assert registry.metric_model("matching-fce", ways=5).full_context
    assert registry.metric_model("matching", ways=5, similarity="cosine").similarity == "cosine"
    gaussian = registry.metric_model("gaussian-protonet", ways=5, features=8)
    assert gaussian.embedding.last_features == 9  # one channel more: the covariance's radius
    relation = registry.metric_model("relation", ways=5, features=8)
    assert (relation.embedding.pooled_blocks, relation.embedding.unpadded_blocks) == (2, 2)  # 5x5 maps of 28x28
    with pytest.raises(ValueError, match="No metric learner is called 'protonets'"):
        registry.metric_model("protonets", ways=5)
    with pytest.raises(TypeError, match="similarity= applies to the matching networks"):
        registry.metric_model("protonet", ways=5, similarity="cosine")


def test_memory_models_by_name_have_santoro_et_als_sizes():
    from jaxmeta.memory import LSTMCore, MANNCell, NTMCell

    mann = registry.memory_model("mann", num_classes=5)
    assert type(mann.core) is MANNCell and mann.num_classes == 5
    assert (mann.core.controller_features, mann.core.rows, mann.core.width, mann.core.read_heads) == (200, 128, 40, 4)
    assert mann.core.write_vector == "add"
    assert type(registry.memory_model("ntm", num_classes=5, rows=16).core) is NTMCell
    lstm = registry.memory_model("lstm", num_classes=5, controller=32)
    assert type(lstm.core) is LSTMCore and lstm.core.features == 32
    with pytest.raises(ValueError, match="No memory model is called 'dnc'"):
        registry.memory_model("dnc", num_classes=5)
