"""Per-op time of a ``variants.py`` step: ``profile_variant.py VARIANT B``."""
import os, sys
from op_profile import print_op_profile  # the script's folder is on sys.path when run as a script
sys.argv = ["proto.py", sys.argv[1], sys.argv[2], "2"]
exec(open(os.path.join(os.path.dirname(__file__), "variants.py")).read())
print_op_profile(lambda: comp(p, xs, ys, xq, yq))
