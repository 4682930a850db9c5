"""`advlegit` makes OpenMP threads sleep, not spin, while they wait (issue 16: the demo's first run on a
shared CPU); the setting must come before torch loads, respect the user's own, and change no bits."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = "import sys, os, advlegit; print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"

TRAIN = """
import hashlib, torch
from advlegit.generation.defenses import build_defense, defense_params
from advlegit.generation.data import load_embedded
from advlegit.generation.models import build_model
from advlegit.generation.train import fit
torch.set_num_threads(2)  # the demo's thread count on 2 cores; waits only matter with more than one
ds = load_embedded()
x, y = torch.from_numpy(ds.images[:512]), torch.from_numpy(ds.labels[:512])
torch.manual_seed(0)
model = build_model("ross_cnn", width=0.25)
fit(model, build_defense("gradreg", defense_params("gradreg", {"lambda": 10.0})).loss, x, y, steps=6,
    batch_size=64, lr=0.002, seed=0, desc="probe")
print(hashlib.sha256(b"".join(t.numpy().tobytes() for t in model.state_dict().values())).hexdigest())
"""


def _run(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**base, "PYTHONPATH": str(ROOT), **env},
                         capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_advlegit_sets_passive_waits_before_torch_loads_and_keeps_a_users_choice():
    assert _run(PROBE) == "PASSIVE False"
    assert _run(PROBE, OMP_WAIT_POLICY="ACTIVE") == "ACTIVE False"


def test_passive_waits_train_the_same_bits_as_spinning_ones():
    assert _run(TRAIN, OMP_WAIT_POLICY="PASSIVE") == _run(TRAIN, OMP_WAIT_POLICY="ACTIVE") == _run(TRAIN)
