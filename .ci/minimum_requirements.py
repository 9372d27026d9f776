"""Print setup.cfg's declared minimum versions as exact pins (``name==version``), one per line.

Every ``name>=version`` of ``install_requires``, and the ``dev`` extra's bounds on the libraries the tests
call (chex, and packages of ``install_requires`` whose ``dev`` bound is higher because the tests need more
of them than the library). ``make check-minimums`` installs exactly these and runs a fast part of the tests.
"""

import configparser
import re
import sys
from pathlib import Path

TEST_LIBRARIES = ("chex",)  # of the dev extra; its test runners and tools are installed at their newest
LOWER_BOUND = re.compile(r"^([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][^,;\s]*)\s*$")


def minimum_pins(setup_cfg: Path) -> list[str]:
    config = configparser.ConfigParser()
    config.read(setup_cfg)
    pins: dict[str, str] = {}
    for section, key in (("options", "install_requires"), ("options.extras_require", "dev")):
        for line in config.get(section, key).splitlines():
            match = LOWER_BOUND.match(line.strip())
            if match and (key == "install_requires" or match.group(1).lower() in (*pins, *TEST_LIBRARIES)):
                pins[match.group(1).lower()] = match.group(2)
    if not pins:
        sys.exit(f"No 'name>=version' requirement found in {setup_cfg}.")
    return [f"{name}=={version}" for name, version in pins.items()]


if __name__ == "__main__":
    print("\n".join(minimum_pins(Path(__file__).resolve().parents[1] / "setup.cfg")))
