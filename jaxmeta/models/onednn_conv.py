r"""3x3 "SAME" convolutions by oneDNN's direct kernels, an opt-in CPU path (``conv="onednn"``).

XLA:CPU has no fast direct convolution for the conv-4's 64-channel layers, so
the library's CPU default builds image patches and multiplies them
(:func:`jaxmeta.models.conv.conv3x3_im2col`). oneDNN, the kernel library
behind PyTorch's CPU convolutions, runs these layers two to three times
faster without the patches. This module calls it through XLA's FFI: three
custom calls, each a bilinear map of two arrays,

.. math::
    y = x \star K, \qquad
    \bar x = \partial_x \langle x \star K, \bar y \rangle, \qquad
    \bar K = \partial_K \langle x \star K, \bar y \rangle,

and each one's vector-Jacobian product is again one of the three:

.. math::
    \operatorname{vjp}_{\star}(\bar y) = (\bar x(\bar y, K),\ \bar K(x, \bar y)), \quad
    \operatorname{vjp}_{\bar x}(g) = (g \star K,\ \bar K(g, \bar y)), \quad
    \operatorname{vjp}_{\bar K}(G) = (\bar x(\bar y, G),\ x \star G),

so reverse mode of any order (second-order MAML differentiates the inner
loop's gradient) runs on oneDNN throughout. Forward mode (``jax.jvp``) is
refused, as for any ``jax.custom_vjp``.

The extension (``native/onednn_conv.cc``, shipped in the wheel) is compiled
against the ``onednn-cpu-gomp`` and ``onednn-devel-cpu-gomp`` wheels (oneDNN 3.2,
CPU only, GNU OpenMP threads; ``pip install 'jaxmeta[onednn]'``) by a C++17
compiler, in one of two places:

* in a checkout, ``make onednn`` (which ``make test`` runs) builds
  :data:`EXTENSION` beside the source;
* anywhere else, the first use of ``conv="onednn"`` compiles it into the cache
  (:func:`cached_extension`, a few seconds, said on stderr), once per
  environment and version of the source; a missing compiler or oneDNN wheel is
  an error naming the fix.

Compiling on first use, rather than in the wheel's build, keeps the wheel pure
Python: the extension must match the user's jaxlib (its FFI headers) and the
oneDNN wheel in their environment, both known only after installation.
It is float32 and CPU only, which is why it is a switch and not the default: on
GPU and TPU, ``conv="xla"`` is the right choice. ``benchmarks/omniglot.py``
picks it on the CPU when it is built.
"""

import ctypes
import functools
import hashlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp

from jaxmeta.data.paths import cache_root

_TARGETS = {
    "forward": "JaxmetaOnednnConvForward",
    "backward_data": "JaxmetaOnednnConvBackwardData",
    "backward_weights": "JaxmetaOnednnConvBackwardWeights",
}
SOURCE = Path(__file__).parent / "native" / "onednn_conv.cc"
"""The extension's C++ source, shipped with the package."""
EXTENSION = Path(__file__).parent / "native" / "libjaxmeta_onednn.so"
"""Where ``make onednn`` builds the extension in a checkout."""
INSTALL_HINT = "pip install 'jaxmeta[onednn]'"


def cached_extension() -> Path:
    """Where the first use compiles the extension: ``$JAXMETA_CACHE/native/<tag>/``, the tag a hash of the source,
    jaxlib's version and the environment (``sys.prefix``), so another environment or source gets its own build."""
    tag = hashlib.sha256(b"\0".join([SOURCE.read_bytes(), importlib.metadata.version("jaxlib").encode(),
                                      sys.prefix.encode()])).hexdigest()[:16]
    return cache_root() / "native" / tag / "libjaxmeta_onednn.so"


def extension() -> Path | None:
    """The built extension: :data:`EXTENSION` if ``make onednn`` built it, else the cached build, else ``None``."""
    return next((path for path in (EXTENSION, cached_extension()) if path.exists()), None)


def available() -> bool:
    """Whether the extension is built (``make onednn``, or a first use); :func:`load` builds it when it is not."""
    return extension() is not None


def build(output: Path | None = None, *, compiler: str | None = None) -> Path:
    """Compile the extension into ``output`` (default :func:`cached_extension`), atomically; returns the path.

    Needs Linux x86-64 (the only platform of oneDNN's wheels), the ``onednn-devel-cpu-gomp`` wheel in this
    environment (``pip install 'jaxmeta[onednn]'``) and a C++17 compiler (``compiler``, default ``$CXX``, else
    ``g++`` or ``c++``); a clear error names whichever is missing and the fix.
    """
    output = Path(output) if output is not None else cached_extension()
    if (platform.system(), platform.machine()) != ("Linux", "x86_64"):
        raise RuntimeError(f"conv='onednn': oneDNN's CPU wheels exist for Linux x86-64 only, this is "
                           f"{platform.system()}-{platform.machine()}; use conv='im2col'.")
    prefix = Path(sys.prefix)
    if not (prefix / "include" / "oneapi" / "dnnl" / "dnnl.hpp").exists():
        raise RuntimeError(f"conv='onednn': oneDNN's headers are not in this environment ({prefix}/include): "
                           f"{INSTALL_HINT}, or use conv='im2col'.")
    compiler = compiler or os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not compiler or not shutil.which(compiler):
        raise RuntimeError("conv='onednn' compiles its extension on first use and found no C++ compiler (g++, c++ "
                           "or $CXX): install one (Debian/Ubuntu: apt install g++; Fedora: dnf install gcc-c++), or "
                           "use conv='im2col'.")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent) as scratch:
        built = Path(scratch) / output.name
        command = [compiler, "-O2", "-std=c++17", "-shared", "-fPIC", "-Wno-attributes", "-Wno-return-type",
                   str(SOURCE), "-o", str(built), f"-I{prefix / 'include'}", f"-I{jax.ffi.include_dir()}",
                   f"-L{prefix / 'lib'}", "-ldnnl", f"-Wl,-rpath,{prefix / 'lib'}"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"conv='onednn': compiling the extension failed ({' '.join(command)}):\n"
                               f"{result.stderr[-2000:]}")
        os.replace(built, output)  # a reader never sees a half-written library
    return output


@functools.cache
def load() -> None:
    """Loads the extension and registers its custom calls with XLA (once), compiling it first if it is not built."""
    path = extension()
    if path is None:
        path = cached_extension()
        print(f"jaxmeta: compiling the oneDNN extension into {path} (first use in this environment; a few "
              "seconds)", file=sys.stderr)
        build(path)
    try:
        library = ctypes.CDLL(str(path))
    except OSError as error:  # built for another venv or interpreter, or damaged
        raise RuntimeError(f"conv='onednn': the oneDNN extension {path} does not load ({error}); delete it to "
                           "have it rebuilt (in a checkout: `make -B onednn`), or use conv='im2col'.") from error
    for symbol in _TARGETS.values():
        jax.ffi.register_ffi_target(symbol, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu")


def _varying_axes(x) -> frozenset:
    """The mesh axes along which ``x`` varies inside ``jax.shard_map`` (none outside it)."""
    manual = getattr(jax.typeof(x), "manual_axis_type", None)
    return frozenset() if manual is None else frozenset(manual.varying)


def _call(name: str, a: jax.Array, b: jax.Array, shape) -> jax.Array:
    load()
    result = jax.ShapeDtypeStruct(shape, jnp.float32)
    y = jax.ffi.ffi_call(_TARGETS[name], result, vmap_method="sequential")(a, b)
    # Inside shard_map, JAX types an FFI result as the same on every device; it varies as its inputs do
    # (jaxmeta.distributed gives each device its own tasks), and a custom_vjp's cotangents must say so.
    axes = (_varying_axes(a) | _varying_axes(b)) - _varying_axes(y)
    return jax.lax.pcast(y, tuple(sorted(axes)), to="varying") if axes else y


@jax.custom_vjp
def forward(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """``x [N, H, W, C] x K [3, 3, C, O] -> y [N, H, W, O]``: the convolution."""
    return _call("forward", x, kernel, x.shape[:3] + kernel.shape[3:])


@jax.custom_vjp
def backward_data(out_cotangent: jax.Array, kernel: jax.Array) -> jax.Array:
    """``dy [N, H, W, O] x K [3, 3, C, O] -> dx [N, H, W, C]``: the convolution's transpose in ``x``."""
    transposed = jnp.swapaxes(kernel, 2, 3)  # HWOI, which oneDNN's direct kernel reads without a reorder
    return _call("backward_data", out_cotangent, transposed, out_cotangent.shape[:3] + kernel.shape[2:3])


@jax.custom_vjp
def backward_weights(x: jax.Array, out_cotangent: jax.Array) -> jax.Array:
    """``x [N, H, W, C] x dy [N, H, W, O] -> dK [3, 3, C, O]``: the convolution's transpose in the kernel."""
    return _call("backward_weights", x, out_cotangent, (3, 3, x.shape[3], out_cotangent.shape[3]))


forward.defvjp(lambda x, k: (forward(x, k), (x, k)),
               lambda res, g: (backward_data(g, res[1]), backward_weights(res[0], g)))
backward_data.defvjp(lambda dy, k: (backward_data(dy, k), (dy, k)),
                     lambda res, g: (forward(g, res[1]), backward_weights(g, res[0])))
backward_weights.defvjp(lambda x, dy: (backward_weights(x, dy), (x, dy)),
                        lambda res, g: (backward_data(res[1], g), forward(res[0], g)))


def conv3x3_onednn(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """A 3x3 "SAME" convolution of ``[..., H, W, C]`` float32 with ``[3, 3, C, O]`` by oneDNN (no bias).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x, k = jnp.ones((2, 5, 5, 16), jnp.float32), jnp.ones((3, 3, 16, 8), jnp.float32)
      >>> y = conv3x3_onednn(x, k)
      >>> y.shape, y[0, 2, 2, 0].item(), y[0, 0, 0, 0].item()  # 9 taps x 16 channels inside, 4 x 16 at a corner
      ((2, 5, 5, 8), 144.0, 64.0)
      >>> jax.grad(lambda k: conv3x3_onednn(x, k).sum())(k)[1, 1, 0, 0].item()  # the centre tap sees every pixel
      50.0
    """
    if x.dtype != jnp.float32 or kernel.dtype != jnp.float32:
        raise TypeError(f"conv='onednn' computes in float32 only, got {x.dtype} images and a {kernel.dtype} kernel; "
                        "use conv='im2col' or conv='xla' for other types.")
    if kernel.shape[:2] != (3, 3) or kernel.shape[2] != x.shape[-1]:
        raise ValueError(f"expected a [3, 3, {x.shape[-1]}, O] kernel for images {x.shape}, got {kernel.shape}.")
    y = forward(x.reshape(-1, *x.shape[-3:]), kernel)
    return y.reshape(*x.shape[:-1], kernel.shape[-1])
