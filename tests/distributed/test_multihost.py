"""Two processes (stand-ins for two hosts, 2 CPU devices each) train exactly as one process with 4 devices,
and their checkpoint resumes in one process on another device count."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxmeta.distributed import process_share

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "multihost_maml.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run_example(*options) -> dict:
    """The example in one process; its JSON result."""
    done = subprocess.run([sys.executable, str(EXAMPLE), "--meta-batch", "8", *options],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.long
def test_two_processes_train_as_one_and_their_checkpoint_resumes_on_one_device(tmp_path):
    port = free_port()
    workers = [subprocess.Popen([sys.executable, str(EXAMPLE), "--meta-batch", "8", "--steps", "2",
                                 "--run-dir", str(tmp_path), "--cpu-devices", "2", "--num-processes", "2",
                                 "--process-id", str(i), "--coordinator", f"localhost:{port}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    for worker, (_out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-2000:]
    shared = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    alone = run_example("--steps", "3", "--cpu-devices", "4")
    resumed = run_example("--steps", "3", "--cpu-devices", "1", "--run-dir", str(tmp_path))
    assert [r["processes"] for r in shared] == [2, 2] and alone["processes"] == resumed["processes"] == 1
    assert {r["devices"] for r in shared} == {alone["devices"]} == {4} and resumed["devices"] == 1
    for result in shared:
        np.testing.assert_allclose(result["losses"], alone["losses"][:2], rtol=1e-6)
    # The two processes' step-2 checkpoint, restored on one device, continues like the uninterrupted run.
    assert resumed["first_step"] == 2 and len(resumed["losses"]) == 1
    np.testing.assert_allclose(resumed["losses"], alone["losses"][2:], rtol=1e-6)
    np.testing.assert_allclose(resumed["parameters"], alone["parameters"], rtol=1e-5, atol=1e-7)


def test_process_shares_are_disjoint_and_cover_the_batch():
    shares = [process_share(12, process_index=p, process_count=3) for p in range(3)]
    assert [list(range(12))[s] for s in shares] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    with pytest.raises(ValueError, match="A meta-batch of 10 tasks does not split evenly over 3 processes"):
        process_share(10, process_index=0, process_count=3)
