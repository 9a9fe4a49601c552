"""The Python suites' shared emulator launcher (`tests/python/local_emulator.py`) on the path."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "python"))
