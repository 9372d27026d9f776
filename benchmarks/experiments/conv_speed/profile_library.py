"""Per-op time of the library's meta step (``library_step.py``'s arguments), from ``jax.profiler``."""
import os
from op_profile import print_op_profile  # the script's folder is on sys.path when run as a script
exec(open(os.path.join(os.path.dirname(__file__), "library_step.py")).read())
print_op_profile(lambda: comp(state, tasks, k))
