"""The docs stay true: the CLI reference matches --help, the API examples run, links resolve."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, SHARED


def test_cli_reference_matches_the_commands():
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "cli_docs.py"), "--check"], capture_output=True,
                       text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))  # fmt: skip
    assert r.returncode == 0, r.stderr


def test_python_api_examples_run(tmp_path):
    """Every ```python block of docs/python-api.md, in order, in a folder holding noisy.png."""
    text = (REPO / "docs" / "python-api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 4
    shutil.copy(REPO / "samples" / "kodim23-crop-noisy-l3.png", tmp_path / "noisy.png")
    script = tmp_path / "examples.py"
    script.write_text("\n".join(f"# --- block {i}\n{b}" for i, b in enumerate(blocks)))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path,
                       env=dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1"), timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    for made in ("photo.jcd", "photo-clean.png", "clean16.png", "pair.png"):
        assert (tmp_path / made).is_file(), made


def test_links_in_readme_and_docs_resolve():
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#]+)\)", doc.read_text()):
            if "://" in target:
                continue
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def _blocks(doc, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", doc.read_text(), flags=re.S)


@pytest.mark.skipif(not (SHARED / "data" / "kodak").is_dir() or not (SHARED / "data" / "train").is_dir(),
                    reason=f"{SHARED / 'data'} not present: the documented commands use the shared data sets")
def test_the_documented_commands_run_verbatim(tmp_path):
    """Every ```bash block of README.md and docs/getting-started.md (and the README's Python), in a copy of the
    checkout beside the shared data, as a newcomer would type them; the README's test command is CI's own."""
    import stat

    stamp = REPO / ".venv" / ".jcd-installed"
    if not stamp.is_file() or stamp.stat().st_mtime < (REPO / "pyproject.toml").stat().st_mtime:
        # setup.sh in the copy would reinstall into this .venv (a symlink), pointing it at the temporary copy
        pytest.fail("pyproject.toml is newer than .venv's install: run `bash scripts/setup.sh` first")
    root = tmp_path / "main"
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    if not files:
        pytest.skip("not a git checkout")
    for f in files:
        if (REPO / f).is_file():
            (root / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, root / f)  # keeps mtimes, so setup.sh finds the environment current
    (tmp_path / "shared").symlink_to(SHARED)
    (root / ".venv").symlink_to(REPO / ".venv")
    readme, started = REPO / "README.md", REPO / "docs" / "getting-started.md"
    script = ["set -eo pipefail"]
    for doc in (readme, started):
        for block in _blocks(doc, "bash"):
            script += [line for line in block.splitlines() if "scripts/test.sh" not in line]
    (root / "readme_example.py").write_text("\n".join(_blocks(readme, "python")))
    script.append(".venv/bin/python readme_example.py")
    runner = root / "documented.sh"
    runner.write_text("\n".join(script) + "\n")
    runner.chmod(runner.stat().st_mode | stat.S_IXUSR)
    r = subprocess.run(["bash", str(runner)], cwd=root, capture_output=True, text=True, timeout=1500,
                       env=dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1"))  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "installing" not in r.stderr, "setup.sh reinstalled: the copy must look current"
    for made in ("demo-out/sample-clean.png", "clean.png", "coded/noisy.jcd", "clean/kodim23-crop-noisy-l3.png",
                 "a.webp", "results/quick/report.md", "runs/try/try.safetensors",
                 "clean-without-torch.png", "without-torch.jcd"):  # fmt: skip
        assert (root / made).is_file(), made
