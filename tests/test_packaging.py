"""A wheel of dreambench carries every data file the code reads (an editable install hides a missing one)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_carries_the_data_files(tmp_path):
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                          "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    # Issue 25: the license is an SPDX expression with its file, not setuptools' deprecated table.
    assert "deprecat" not in (res.stdout + res.stderr).lower(), res.stdout[-3000:]
    (wheel,) = tmp_path.glob("dreambench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ["dreambench/protocols/subjects/dreambooth.csv", "dreambench/protocols/prompts/dreambooth.yaml",
                     "dreambench/engine/calibration.json", "dreambench/data/dreambooth_sha256.csv",
                     "dreambench/models/configs/sd15_unet.json", "dreambench/models/configs/tiny_unet.json"]:
        assert required in names, required
    assert any(n.startswith("dreambench/report/templates/") for n in names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert any(n.startswith("dreambench/study/templates/") for n in names)
    # The protocol files in the wheel are the repository's top-level ones (links in the source tree).
    with zipfile.ZipFile(wheel) as z:
        assert z.read("dreambench/protocols/subjects/dreambooth.csv") == (ROOT / "subjects/dreambooth.csv").read_bytes()
