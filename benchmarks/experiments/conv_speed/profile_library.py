"""Per-op time of the library's meta step (``library_step.py``'s arguments), from ``jax.profiler``."""
import os, sys
exec(open(os.path.join(os.path.dirname(__file__), "library_step.py")).read())
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from op_profile import print_op_profile  # noqa: E402
print_op_profile(lambda: comp(state, tasks, k))
