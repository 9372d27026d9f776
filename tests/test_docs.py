"""The documentation's coverage: every public name has a docstring and a page in the API reference.

The pages are generated from ``__all__`` (docs/conf.py), so these tests guard what generation cannot: a name
exported without a docstring (a function, a class, a constant or a type alias), and a public subpackage left
out of the reference.
"""

import importlib
import inspect
import pkgutil
import runpy
import types
from pathlib import Path

import pytest

import jaxmeta

ROOT = Path(__file__).resolve().parent.parent
CONF = runpy.run_path(str(ROOT / "docs" / "conf.py"))
API_MODULES = [name for name, _ in CONF["API_PAGES"]]
attribute_docs = CONF["attribute_docs"]  # the constants' docstrings, as the docs read them


def public_names(module_name):
    module = importlib.import_module(module_name)
    return [(name, getattr(module, name)) for name in module.__all__
            if not isinstance(getattr(module, name), types.ModuleType)]


def own_docstring(obj, name):
    """The object's docstring unless it is missing or Python's generated one (a NamedTuple's ``Name(a, b)``)."""
    doc = inspect.getdoc(obj) if (inspect.isclass(obj) or inspect.isroutine(obj)) else None
    if doc and not doc.startswith(f"{name}("):
        return doc
    return None


@pytest.mark.parametrize("module_name", API_MODULES)
def test_every_public_name_has_a_docstring(module_name):
    attributes = attribute_docs("jaxmeta")
    missing = [name for name, obj in public_names(module_name)
               if not own_docstring(obj, name) and name not in attributes]
    assert not missing, f"{module_name} exports names without a docstring: {missing}"


def test_every_public_subpackage_has_a_reference_page():
    packages = ["jaxmeta"] + [info.name for info in pkgutil.walk_packages(jaxmeta.__path__, "jaxmeta.")
                              if info.ispkg]
    with_all = [name for name in packages if hasattr(importlib.import_module(name), "__all__")]
    assert sorted(set(with_all) - set(API_MODULES)) == []


def test_a_name_without_a_docstring_is_caught():
    def undocumented():
        pass

    assert own_docstring(undocumented, "undocumented") is None
    assert own_docstring(jaxmeta.Task, "Task")  # a NamedTuple with a written docstring passes
