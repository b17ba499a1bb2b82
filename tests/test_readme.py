"""The README's promises: its library example runs, its commands are what CI and set-up use."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_library_example_runs(capsys):
    code = re.findall(r"```python\n(.*?)```", README, re.S)[0]
    exec(compile(code, "README.md", "exec"), {})
    assert "3 QPC modes" in capsys.readouterr().out


def test_two_commands_are_first_and_ci_runs_the_second():
    commands = re.findall(r"^(\./scripts/[\w-]+)", README, re.M)
    assert commands[:2] == ["./scripts/run-demo", "./scripts/run-tests"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec ./scripts/run-tests" in ci
    for command in commands[:2]:
        assert (ROOT / command).stat().st_mode & 0o111, f"{command} is not executable"
