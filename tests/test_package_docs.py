"""The documentation runs as written: every code block of README.md and docs/*.md marked
`runnable` (```sh runnable, ```python runnable) runs here, in order, a file's blocks in one fresh
directory holding a small corpus (notes.txt, a.txt, b.txt), with its budgets cut down (a
minute to two seconds, steps to a tenth), so an example cannot drift from the code. And
README stays a front page: at most 300 lines, every link resolving."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .cli_support import make_corpus

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def runnable_blocks(page):
    return [(lang, body) for lang, info, body in FENCE.findall(page.read_text(encoding="utf-8"))
            if "runnable" in info.split()]


def small(code):
    """The block with its budgets cut: minutes to two seconds, steps to a tenth (at least 2)."""
    code = re.sub(r"(--minutes[ =])[\d.]+", r"\g<1>0.03", code)
    code = re.sub(r"(\bminutes=)[\d.]+", r"\g<1>0.03", code)
    return re.sub(r"(--steps[ =]|\bsteps=)(\d+)", lambda m: f"{m.group(1)}{max(2, int(m.group(2)) // 10)}", code)


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if runnable_blocks(p)], ids=lambda p: p.name)
def test_the_runnable_blocks_run_as_written(page, tmp_path):
    for name, n, seed in (("notes.txt", 400, 0), ("a.txt", 150, 1), ("b.txt", 150, 2)):
        make_corpus(tmp_path / name, n=n, seed=seed)
    env = {**os.environ, "CHARRNN_CACHE_DIR": str(tmp_path / "cache"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("CHARRNN_CHECKPOINT_DIR", None)
    for i, (lang, body) in enumerate(runnable_blocks(page), start=1):
        cmd = ["bash", "-e", "-o", "pipefail", "-c", small(body)] if lang in ("sh", "bash") else \
            [sys.executable, "-c", small(body)]
        r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, f"{page.name}, runnable block {i}:\n{body}\nstderr:\n{r.stderr[-3000:]}"


def test_readme_is_a_front_page_and_every_link_resolves():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name} links to {target}, which is not there"


def test_the_docs_point_nowhere_outside_the_repository():
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert "../shared" not in text and "/work/" not in text and "/root/" not in text, page.name
