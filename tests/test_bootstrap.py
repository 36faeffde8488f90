"""`source scripts/bootstrap` puts `heimdall` on PATH and leaves the shell as it was."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_sourcing_the_bootstrap_leaves_the_shell_as_it_was():
    # dev,train: what the test command installed, so this run installs nothing
    script = (
        'set +e; before="$-"; source scripts/bootstrap dev,train; echo "sourced rc=$?"; '
        'false; echo "survived a failing command"; '
        'echo "options before=$before after=$-"; command -v heimdall'
    )
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    lines = done.stdout.splitlines()
    assert "sourced rc=0" in lines and "survived a failing command" in lines, done.stderr
    options = next(line for line in lines if line.startswith("options"))
    before, after = (part.split("=")[1] for part in options.split()[1:])
    assert before == after
    assert lines[-1] == str(ROOT / ".venv" / "bin" / "heimdall")
