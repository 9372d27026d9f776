"""The package as a user gets it: ``python -m build`` makes a wheel and an sdist, and the wheel, installed into
a fresh virtual environment outside the checkout, runs a MAML step, loads Omniglot from ``$JAXMETA_DATA``,
passes a doctest of the installed module, and compiles and runs the oneDNN convolution on first use.

The environment installs the wheel's dependencies from the package index (pip's cache makes it about 20 s on
this machine). Its check script runs with the checkout out of sight (another working directory, no
``PYTHONPATH``) and asserts that it imported the installed package.
"""

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from jaxmeta.data.paths import data_root

ROOT = Path(__file__).resolve().parent.parent

CHECK = textwrap.dedent('''
    import doctest, os, sys
    import jax, jax.numpy as jnp, numpy as np, optax
    import jaxmeta
    from jaxmeta.core import adapt
    from jaxmeta.data.omniglot import load_omniglot
    from jaxmeta.models import MLP, functional, onednn_conv
    from jaxmeta.models.conv import conv3x3

    assert jaxmeta.__file__.startswith(sys.prefix), f"imported {jaxmeta.__file__}, not the installed package"

    model = MLP((16, 1))
    params = model.init(jax.random.key(0), jnp.zeros((1, 1)))["params"]
    learner = jaxmeta.maml(jaxmeta.regression_loss(functional(model)), inner_lr=0.01)
    optimizer = optax.adam(1e-3)
    state = jaxmeta.init_state(learner, optimizer, params)
    state, metrics = jaxmeta.make_meta_step(learner, optimizer)(
        state, jaxmeta.sinusoid_tasks(jax.random.key(1), 4, shots=5), jax.random.key(2))
    assert int(state.step) == 1 and np.isfinite(float(metrics["loss"]))

    data = load_omniglot(subsets=("background_small1",))
    assert data.images.shape == (136, 20, 28, 28), data.images.shape

    result = doctest.testmod(adapt)
    assert result.attempted > 0 and result.failed == 0, result

    assert not onednn_conv.available()  # nothing built yet in this environment: the first use compiles it
    x = jax.random.normal(jax.random.key(3), (2, 6, 6, 8), jnp.float32)
    kernel = jax.random.normal(jax.random.key(4), (3, 3, 8, 4), jnp.float32)
    np.testing.assert_allclose(conv3x3(x, kernel, "onednn"), conv3x3(x, kernel, "im2col"), rtol=1e-4, atol=1e-4)
    assert onednn_conv.available() and str(onednn_conv.extension()).startswith(os.environ["JAXMETA_CACHE"])
    print("installed wheel: MAML step, Omniglot, doctest and oneDNN all ran")
''')


@pytest.mark.long
def test_the_built_wheel_works_in_a_fresh_environment(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)],
                   check=True, capture_output=True, text=True)
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "jaxmeta/models/native/onednn_conv.cc" in names and not [n for n in names if n.endswith(".so")]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"{wheels[0]}[onednn]"],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-3000:]

    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "check.py").write_text(CHECK)
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "XLA_FLAGS", "JAX_ENABLE_X64") and not key.startswith("JAXMETA")}
    env.update(JAXMETA_DATA=str(data_root().resolve()), JAXMETA_CACHE=str(tmp_path / "cache"))
    run = subprocess.run([str(python), "check.py"], cwd=work, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "all ran" in run.stdout
