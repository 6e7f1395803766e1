"""The README's "Testing your LiveKit app without a server" examples are test_readme_example.py
and test_readme_datatracks.py, character for character: editing one without the other fails
here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_example_is_the_test_file_verbatim() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    example = [b for b in blocks if b.startswith("# test_weather.py:")]
    assert len(example) == 1
    test_file = Path(__file__).with_name("test_readme_example.py").read_text(encoding="utf-8")
    assert example[0] == test_file


def test_the_readme_data_track_example_is_the_test_file_verbatim() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    example = [b for b in blocks if b.startswith("# test_sensor.py:")]
    assert len(example) == 1
    test_file = Path(__file__).with_name("test_readme_datatracks.py").read_text(encoding="utf-8")
    assert example[0] == test_file
