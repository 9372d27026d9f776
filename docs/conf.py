"""Sphinx configuration of jaxmeta's documentation (``make docs``).

The API reference is generated at build time from the ``__all__`` of each
public subpackage (:data:`API_PAGES`), so every public name has a page and a
name added to ``__all__`` appears without editing the docs. Notebooks are
rendered by myst-nb from their stored outputs, never executed here.
"""

import functools
import importlib
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

project = "jaxmeta"
author = "the jaxmeta developers"
copyright = "2026, the jaxmeta developers"
release = importlib.import_module("jaxmeta").__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
templates_path = ["_templates"]  # autosummary's class page without tables of inherited members

# Every cross-reference must resolve (with -W, a broken one fails the build). The site has no internet, so the
# types of the libraries jaxmeta builds on (in signatures and base classes) are not linked.
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"(flax|jax|jaxlib|numpy|optax|orbax|chex|collections|typing)(\..*)?")]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
nb_execution_mode = "off"  # the notebooks are stored with their outputs; `make test` executes them
nb_merge_streams = True

autosummary_generate = True
autodoc_typehints = "none"  # the signatures carry the annotations; repeating them in the text only adds noise
autodoc_member_order = "bysource"
autodoc_inherit_docstrings = False  # a Flax module's setup() without a docstring is not Flax's setup()
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # a NamedTuple's "Attributes:" as fields, not as a second description of its members

html_theme = "sphinx_book_theme"
html_title = "jaxmeta"
html_theme_options = {"show_toc_level": 2}

# One reference page per public subpackage: (module, title).
API_PAGES = [
    ("jaxmeta", "jaxmeta: the functional core and the gradient-based learners"),
    ("jaxmeta.algorithms", "jaxmeta.algorithms"),
    ("jaxmeta.inner", "jaxmeta.inner: learned inner-loop rules"),
    ("jaxmeta.bilevel", "jaxmeta.bilevel: hypergradients, DARTS, example weights"),
    ("jaxmeta.baselines", "jaxmeta.baselines: transfer learning and the embedding baselines"),
    ("jaxmeta.unsupervised", "jaxmeta.unsupervised: CACTUs tasks from clusters"),
    ("jaxmeta.rl", "jaxmeta.rl: MAML for reinforcement learning"),
    ("jaxmeta.metric", "jaxmeta.metric: metric learners"),
    ("jaxmeta.memory", "jaxmeta.memory: memory models and MetaNet"),
    ("jaxmeta.optimizers", "jaxmeta.optimizers: learned optimizers"),
    ("jaxmeta.models", "jaxmeta.models"),
    ("jaxmeta.data", "jaxmeta.data: task distributions"),
    ("jaxmeta.data.omniglot", "jaxmeta.data.omniglot"),
    ("jaxmeta.training", "jaxmeta.training: loops, checkpoints, classifiers"),
    ("jaxmeta.distributed", "jaxmeta.distributed: many devices and hosts"),
]


@functools.cache
def attribute_docs(package_name: str) -> dict[str, list[str]]:
    """``{name: docstring lines}`` of the documented module-level constants (``X = ...`` then a docstring) of a
    package and its submodules, the first definition of a name winning; read once per package."""
    import pkgutil

    from sphinx.pycode import ModuleAnalyzer

    package = importlib.import_module(package_name)
    modules = [package_name] + [info.name for info in pkgutil.walk_packages(getattr(package, "__path__", []),
                                                                            package_name + ".")]
    found: dict[str, list[str]] = {}
    for module in modules:
        for (scope, attribute), lines in ModuleAnalyzer.for_module(module).find_attr_docs().items():
            if scope == "" and "".join(lines).strip():
                found.setdefault(attribute, list(lines))
    return found


def write_api_pages(app) -> None:
    """Write ``api/<module>.rst`` for each of :data:`API_PAGES`: the module's docstring and an autosummary of
    its ``__all__``. An object exported by several subpackages is documented on the first page that lists it
    and linked from the others; a constant gets the docstring of its definition (:func:`constant_docstrings`)."""
    import inspect
    import types

    out = Path(app.srcdir) / "api"
    out.mkdir(exist_ok=True)
    documented: dict[int, str] = {}
    for name, title in API_PAGES:
        module = importlib.import_module(name)
        entries, elsewhere = [], []
        for public in module.__all__:
            obj = getattr(module, public)
            if isinstance(obj, types.ModuleType):
                continue
            if inspect.isclass(obj) or inspect.isroutine(obj):
                if id(obj) in documented:
                    elsewhere.append(f":obj:`~{documented[id(obj)]}`")
                    continue
                documented[id(obj)] = f"{name}.{public}"
                entries.append(public)
            else:  # a constant or a type alias: documented here, its docstring read beside its definition
                entries.append(public)
        lines = [title, "=" * len(title), "", f".. automodule:: {name}", "   :no-members:", "",
                 f".. currentmodule:: {name}", "", ".. autosummary::", "   :toctree: generated",
                 "   :nosignatures:", ""]
        lines += [f"   {entry}" for entry in entries]
        if elsewhere:
            lines += ["", "Also exported here, documented with their first package: " + ", ".join(elsewhere) + "."]
        text = "\n".join(lines) + "\n"
        page = out / f"{name}.rst"
        if not page.exists() or page.read_text() != text:  # unchanged pages keep Sphinx's incremental build
            page.write_text(text)


def copy_repository_pages(app) -> None:
    """Copy the notebooks and the benchmarks' result tables and figures into the source tree (``docs/notebooks``,
    ``docs/results``, both ignored by git), so the guide links to them as pages of the site."""
    import shutil

    for source, target, patterns in ((ROOT / "notebooks", "notebooks", ("*.ipynb",)),
                                     (ROOT / "benchmarks" / "results", "results", ("*.md", "*.png"))):
        destination = Path(app.srcdir) / target
        for pattern in patterns:
            for path in source.rglob(pattern):
                copy = destination / path.relative_to(source)
                if not copy.exists() or copy.read_bytes() != path.read_bytes():
                    copy.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, copy)


def constant_docstrings(app, what, name, obj, options, lines) -> None:
    """A constant re-exported by a package (``jaxmeta.bilevel.METHODS``) gets the docstring written under its
    definition (``X = ...`` then a string, in ``jaxmeta.bilevel.hypergradient``), not its type's."""
    if what not in ("data", "attribute"):
        return
    package, _, attribute = name.rpartition(".")
    if not package.startswith("jaxmeta"):
        return
    docs = attribute_docs(package).get(attribute) if importlib.util.find_spec(package) else None
    if docs:
        lines[:] = docs


def link_repository_pages(app, docname, source) -> None:
    """The guide's pages link to ``../benchmarks/results/...`` and ``../notebooks/...`` (right on GitHub and in an
    editor); in the site those are the copies made by :func:`copy_repository_pages`."""
    source[0] = source[0].replace("](../benchmarks/results/", "](results/").replace("](../notebooks/", "](notebooks/")


def setup(app):
    app.connect("source-read", link_repository_pages)
    app.connect("autodoc-process-docstring", constant_docstrings)
    # at config-inited, before Sphinx lists the source files and autosummary generates its stubs from them
    app.connect("config-inited", lambda app, config: write_api_pages(app))
    app.connect("config-inited", lambda app, config: copy_repository_pages(app))
