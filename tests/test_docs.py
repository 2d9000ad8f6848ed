"""Every code block in README.md and docs/*.md runs as written.

Fences are labelled ``python``, ``bash`` or ``text``. The fast tests read the pages only: the
README's shape, that every block parses, that every file a block reads is a shipped sample or
was written by an earlier block of the same page, and that links and pip extras exist. The
slow tests run each page's blocks in order, in a temporary folder holding a copy of
``samples/``:

- ``python`` blocks run in one interpreter per page, sharing one namespace (``__name__`` is
  ``"__main__"``), so a block may use what an earlier one made;
- ``bash`` blocks of ``audiostyle`` commands run through the installed console script, and every
  file they name with ``-o``/``--plot``/``--report`` must exist afterwards;
- an ``audiostyle serve`` block starts the studio on a free port and waits for its link, which
  must open; later ``curl`` blocks of the page run against it with the printed token in ``$T``;
- ``python -m benchmarks.X`` blocks are not run (they take minutes to hours): their modules must
  exist and their flags must appear in ``--help``.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHIPPED = {f"samples/{path.name}" for path in (ROOT / "samples").iterdir() if path.is_file()}
LANGUAGES = {"python", "bash", "text"}
AUDIO = re.compile(r"[\w./-]+\.(?:wav|flac|ogg|mp3|aiff?)\b", re.IGNORECASE)
SAMPLE_PATH = re.compile(r"samples/[\w.-]+\.\w+")
#: Options whose value is a file a command writes.
OUTPUT_OPTIONS = {"-o", "--output", "--plot", "--report"}
#: The README's set-up commands, exactly: users copy them, and CI runs the test command.
SETUP_COMMAND = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && "
    'pip install -e ".[plot]" && audiostyle samples/voice.flac samples/violin.wav --preset fast '
    "-o voice-violin.wav --overwrite"
)
TEST_COMMAND = '. .venv/bin/activate && pip install -e ".[test]" && python -m pytest -q'
README_MAX_LINES = 150
BLOCK_TIMEOUT = 300
COMMANDS = {"stylize", "texture", "batch", "serve", "plot", "train", "apply"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the block's first line of code, 1-based
    language: str
    source: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


@functools.cache
def code_blocks(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, in order (indented fences included)."""
    blocks, current, language, start, indent = [], None, "", 0, 0
    for number, line in enumerate(page.read_text().splitlines(), 1):
        stripped = line.strip()
        if current is None:
            if stripped.startswith("```"):
                current, language, start = [], stripped[3:].strip(), number + 1
                indent = len(line) - len(line.lstrip())
        elif stripped == "```":
            blocks.append(Block(page, start, language, "\n".join(current) + "\n"))
            current = None
        else:
            current.append(line[indent:])
    assert current is None, f"{page.relative_to(ROOT)}: a fence opened at line {start - 1} is never closed"
    return blocks


ALL_BLOCKS = [block for page in PAGES for block in code_blocks(page)]


def commands(source: str) -> list[list[str]]:
    """The shell words of each command line of a bash block (comments and blank lines dropped)."""
    found = []
    for line in source.replace("\\\n", " ").splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # a quote spanning lines: bash -n judges the syntax, not this
            words = line.split()
        if words:
            found.append(words)
    return found


def _benchmark_module(words: list[str]) -> str | None:
    if words[:1] == ["nice"]:
        words = words[1:]
    if len(words) >= 3 and words[0] in ("python", "python3") and words[1] == "-m" and words[2].startswith("benchmarks."):
        return words[2]
    return None


def kind(block: Block) -> str | None:
    """What the runner does with a bash block; None for a block it does not know."""
    if block.language != "bash":
        return None
    readme = code_blocks(ROOT / "README.md")
    if block in readme[:2]:
        return "setup"
    lines = commands(block.source)
    if not lines:
        return None
    if any(words[:2] == ["audiostyle", "serve"] for words in lines):
        return "serve" if len(lines) == 1 else None
    if all(words[0] == "audiostyle" for words in lines):
        return "cli"
    if any(word == "curl" or word.endswith("$(curl") for words in lines for word in words):
        return "http"
    if all(_benchmark_module(words) for words in lines):
        return "benchmark"
    return None


def _outputs(words: list[str]) -> list[str]:
    return [words[i + 1] for i, word in enumerate(words[:-1]) if word in OUTPUT_OPTIONS]


def _audio_inputs(words: list[str]) -> list[str]:
    """Audio files an ``audiostyle`` command reads: every audio-looking word that is not an output."""
    outputs = set(_outputs(words))
    return [match for word in words if word not in outputs for match in AUDIO.findall(word)]


def _python_files(source: str) -> tuple[list[str], list[str]]:
    """Audio file names a python block reads and writes (string literals; writes: ``save`` calls)."""
    tree = ast.parse(source)
    written = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("save", "save_audio"):
                written.add(node.args[0].value)
    # Parts of f-strings are names built at run time, not files.
    parts = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    literals = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in parts
    ]
    read = [value for value in literals if value not in written and AUDIO.fullmatch(value)]
    return read, sorted(written)


# --- fast checks -------------------------------------------------------------------------


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; keep it to {README_MAX_LINES}"


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first_section = text.split("\n## ", 1)[0]
    blocks = code_blocks(ROOT / "README.md")
    assert [b.language for b in blocks[:2]] == ["bash", "bash"]
    assert blocks[0].source.strip() == SETUP_COMMAND
    assert blocks[1].source.strip() == TEST_COMMAND
    assert first_section.count("```") >= 4, "both commands come before the first section"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_fence_is_labelled(page):
    for block in code_blocks(page):
        assert block.language in LANGUAGES, f"{block.where}: label the fence python, bash or text, not {block.language!r}"


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.language == "python"], ids=lambda b: b.where)
def test_python_blocks_parse(block):
    compile(block.source, block.where, "exec")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.language == "bash"], ids=lambda b: b.where)
def test_bash_blocks_parse_and_are_known(block):
    checked = subprocess.run(["bash", "-n"], input=block.source, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, f"{block.where}: {checked.stderr}"
    assert kind(block) is not None, (
        f"{block.where}: a bash block is audiostyle commands, one `audiostyle serve`, curl calls to "
        "the studio, or benchmark commands; anything else belongs in a text block"
    )
    if kind(block) == "http":
        page_kinds = [kind(b) for b in code_blocks(block.page) if b.language == "bash"]
        assert "serve" in page_kinds[: page_kinds.index("http")], f"{block.where}: start the studio first"
    if kind(block) == "benchmark":
        for words in commands(block.source):
            module = _benchmark_module(words)
            assert (ROOT / (module.replace(".", "/") + ".py")).exists(), f"{block.where}: no module {module}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_blocks_name_shipped_files(page):
    """Every sample a block names is shipped; a runnable block reads only those and earlier outputs."""
    made: set[str] = set()
    for block in code_blocks(page):
        for path in SAMPLE_PATH.findall(block.source):
            assert path in SHIPPED, f"{block.where}: {path} is not a shipped sample ({sorted(SHIPPED)})"
        if block.language == "python":
            read, written = _python_files(block.source)
            made.update(written)
            missing = [name for name in read if name not in SHIPPED | made]
            assert not missing, f"{block.where}: reads {missing}, neither shipped nor written earlier"
        elif block.language == "bash" and kind(block) in ("cli", "setup"):
            for words in commands(block.source):
                if "audiostyle" not in words:
                    continue
                words = words[words.index("audiostyle") :]
                missing = [name for name in _audio_inputs(words) if name not in SHIPPED | made]
                assert not missing, f"{block.where}: reads {missing}, neither shipped nor written earlier"
                made.update(_outputs(words))


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings."""
    headings = re.findall(r"^#+\s+(.*)$", page.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.relative_to(ROOT)}: link to {target}, which does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{page.relative_to(ROOT)}: no heading for #{anchor} in {path or page.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_paths_exist(page):
    """Files and folders of the repository that the prose names in code spans exist."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    for path in re.findall(r"`((?:audiostyle|cli|tests|benchmarks|training|samples|docs)/[^`\s]*)`", text):
        if path.startswith("benchmarks/results"):  # made by the benchmarks, git-ignored
            continue
        assert (ROOT / path).exists(), f"{page.relative_to(ROOT)}: names {path}, which does not exist"


def test_pip_extras_exist():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for page in PAGES:
        for names in re.findall(r"""pip install[^\n]*?\.\[([\w,]+)\]""", page.read_text()):
            for name in names.split(","):
                assert name in extras, f"{page.relative_to(ROOT)}: pip extra [{name}] is not in pyproject.toml"


# --- slow runs -----------------------------------------------------------------------------

RUNNER = '''
import contextlib, json, sys, traceback

def main():
    namespace = {"__name__": "__main__"}
    for request in sys.stdin:
        block = json.loads(request)
        status = "ok"
        try:
            # Padding keeps the page's line numbers in tracebacks.
            code = compile("\\n" * (block["line"] - 1) + block["source"], block["page"], "exec")
            with contextlib.redirect_stdout(sys.stderr):
                exec(code, namespace)
        except BaseException:
            traceback.print_exc()
            status = "failed"
        sys.stderr.flush()
        print(MARK + status, flush=True)

if __name__ == "__main__":
    main()
'''
MARK = "@@doc-runner@@ "


class PythonRunner:
    """One interpreter per page that runs its python blocks in one namespace."""

    def __init__(self, folder: Path, env: dict[str, str], log: Path) -> None:
        script = folder.parent / "doc_runner.py"
        script.write_text(f"MARK = {MARK!r}\n{RUNNER}")
        self.log = log
        self._log_file = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(script)], cwd=folder, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log_file,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)

    def run(self, block: Block) -> None:
        request = {"page": str(block.page.relative_to(ROOT)), "line": block.line, "source": block.source}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        while True:
            try:
                line = self.lines.get(timeout=BLOCK_TIMEOUT)
            except queue.Empty:
                pytest.fail(f"{block.where}: still running after {BLOCK_TIMEOUT} s\n{self.log.read_text()[-3000:]}")
            if line.startswith(MARK):
                break
        if line[len(MARK) :].strip() != "ok":
            pytest.fail(f"{block.where} failed:\n{self.log.read_text()[-3000:]}")

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log_file.close()


class Studio:
    """``audiostyle serve`` on a free port, with the link it prints."""

    URL = re.compile(r"(http://[^\s/]+:(\d+)/\?token=([A-Za-z0-9._~-]+))")

    def __init__(self, words: list[str], folder: Path, env: dict[str, str], where: str) -> None:
        port = _free_port()
        if "--port" in words:
            words[words.index("--port") + 1] = str(port)
        else:
            words += ["--port", str(port)]
        words[0] = _console_script()
        self.process = subprocess.Popen(
            words, cwd=folder, env=env, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.output: list[str] = []
        found: queue.Queue[re.Match | None] = queue.Queue()

        def read() -> None:
            for line in self.process.stderr:
                self.output.append(line)
                match = self.URL.search(line)
                if match:
                    found.put(match)
            found.put(None)  # it exited

        threading.Thread(target=read, daemon=True).start()
        try:
            match = found.get(timeout=120)
        except queue.Empty:
            match = None
        if match is None:
            self.stop()
            pytest.fail(f"{where}: no link printed:\n{''.join(self.output)[-3000:]}")
        self.url, self.port, self.token = match.group(1), int(match.group(2)), match.group(3)

    def open_link(self, timeout: float = 60) -> int:
        """The HTTP status of the printed link, once the server listens (it prints the link first)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                # As a browser: the link sets the token's cookie and redirects to the page.
                browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
                with browser.open(self.url, timeout=30) as response:
                    return response.status
            except urllib.error.URLError as error:
                if not isinstance(error.reason, ConnectionRefusedError) or time.monotonic() > deadline:
                    raise
                if self.process.poll() is not None:
                    pytest.fail(f"the studio exited:\n{''.join(self.output)[-3000:]}")
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # Ctrl-C, as a user stops it
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _console_script() -> str:
    """The installed ``audiostyle`` command of this interpreter's environment."""
    script = shutil.which("audiostyle", path=str(Path(sys.executable).parent))
    assert script, "install the package first: pip install -e ."
    return script


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["MPLBACKEND"] = "Agg"
    # Spinning OpenMP threads slow every other process on a shared CI machine; the CLI sets
    # the same for itself.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.pop("AUDIOSTYLE_TOKEN", None)  # the studio must print a token of its own
    env["COLUMNS"] = "200"
    return env


def _run_shell(source: str, folder: Path, env: dict[str, str], where: str) -> None:
    try:
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", source],
            cwd=folder, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT, check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{where}: still running after {BLOCK_TIMEOUT} s")
    assert done.returncode == 0, f"{where}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    for words in commands(source):
        if "--dry-run" in words:
            continue
        for output in _outputs(words):
            assert (folder / output).exists(), f"{where}: {' '.join(words)} did not write {output}"


def _runnable_pages() -> list[Path]:
    return [
        page for page in PAGES
        if any(b.language == "python" or kind(b) in ("cli", "serve", "http") for b in code_blocks(page))
    ]


@pytest.mark.slow
@pytest.mark.parametrize("page", _runnable_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_page_runs(page, tmp_path):
    blocks = code_blocks(page)
    kinds = [kind(b) if b.language == "bash" else b.language for b in blocks]
    if "serve" in kinds:
        pytest.importorskip("fastapi", reason="the studio needs the web extra")
    if "http" in kinds and shutil.which("curl") is None:
        pytest.skip("the studio's examples need curl")
    _console_script()
    folder = tmp_path / "work"
    shutil.copytree(ROOT / "samples", folder / "samples")
    env = _environment()
    runner: PythonRunner | None = None
    studio: Studio | None = None
    try:
        for block, what in zip(blocks, kinds):
            if what == "python":
                runner = runner or PythonRunner(folder, env, tmp_path / "python.log")
                runner.run(block)
            elif what == "setup":
                # Only the run on the samples: the installs are what the test suite runs in.
                command = block.source.split("&&")[-1].strip()
                if command.startswith("audiostyle "):
                    _run_shell(command, folder, env, block.where)
            elif what == "cli":
                _run_shell(block.source, folder, env, block.where)
            elif what == "serve":
                if studio:
                    studio.stop()
                studio = Studio(commands(block.source)[0], folder, env, block.where)
                assert studio.open_link() == 200, f"{block.where}: the printed link does not open the page"
            elif what == "http":
                source = block.source.replace(":8765", f":{studio.port}")
                _run_shell(source, folder, {**env, "T": studio.token}, block.where)
                for words in commands(block.source):
                    if "curl" in words and "-o" in words:
                        assert (folder / words[words.index("-o") + 1]).stat().st_size > 0
    finally:
        if studio:
            studio.stop()
        if runner:
            runner.close()


@pytest.mark.slow
def test_benchmark_commands_take_their_flags():
    """A benchmark block's flags are ones its module accepts (the benchmarks themselves are not run)."""
    flags: dict[str, set[str]] = {}
    for block in ALL_BLOCKS:
        if block.language == "bash" and kind(block) == "benchmark":
            for words in commands(block.source):
                used = {word for word in words if word.startswith("--")}
                if used:
                    flags.setdefault(_benchmark_module(words), set()).update(used)
    assert flags
    for module, used in sorted(flags.items()):
        shown = subprocess.run(
            [sys.executable, "-m", module, "--help"], cwd=ROOT, env=_environment(),
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert shown.returncode == 0, f"python -m {module} --help: {shown.stderr[-2000:]}"
        unknown = sorted(flag for flag in used if flag not in shown.stdout)
        assert not unknown, f"python -m {module} does not take {unknown}"


@pytest.mark.slow
def test_usage_lines_name_real_options():
    """Text blocks that show an ``audiostyle`` usage line use only options its --help lists."""
    for block in ALL_BLOCKS:
        if block.language != "text" or not block.source.startswith("audiostyle "):
            continue
        for line in block.source.splitlines():
            words = line.replace("[", " ").replace("]", " ").split()
            command = [word for word in words[1:2] if word in COMMANDS]
            shown = subprocess.run(
                [_console_script(), *command, "--help"],
                env=_environment(), capture_output=True, text=True, timeout=120, check=False,
            )
            assert shown.returncode == 0, f"{block.where}: {shown.stderr[-2000:]}"
            unknown = sorted({w for w in words if w.startswith("--") and w not in shown.stdout})
            assert not unknown, f"{block.where}: audiostyle {' '.join(command)} has no {unknown}"
