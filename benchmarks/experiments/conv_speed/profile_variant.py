"""Per-op time of a ``variants.py`` step: ``profile_variant.py VARIANT B``."""
import os, sys
sys.argv = ["proto.py", sys.argv[1], sys.argv[2], "2"]
exec(open(os.path.join(os.path.dirname(__file__), "variants.py")).read())
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from op_profile import print_op_profile  # noqa: E402
print_op_profile(lambda: comp(p, xs, ys, xq, yq))
