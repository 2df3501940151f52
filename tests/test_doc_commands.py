"""Every command the README and docs/ show is composed as its entry point would (without
running it): a harness-run's config for every job of its sweep (a search's spaces too), a
make-task's config, the report's, export's and track's options. An unknown key, a wrong
group option or a missing `+` fails here, naming the page and line. Placeholders are
written <like this> and stand for any value; links and backticked paths to files of the
repo must exist."""

from __future__ import annotations

import contextlib
import functools
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from harness.run.compose import effective_config
from harness.system import config_dir

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ENTRY = re.compile(r"(?<![\w/-])(?:\S*/)?(harness-(?:run|report|make-task|export|track|calibrate))\)?$")
PLACEHOLDER = re.compile(r"<[^<>\n]+>")
SUBSTITUTE = "placeholder"
MAX_JOBS = 64  # a sweep's jobs checked (all of every sweep the docs show today)
REPO_PATH = re.compile(r"^(?:harness|tests|conf|bench|docs|strategies|hydra_plugins)/[\w./-]+$")


def commands(page: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(line, entry point, its arguments) of each command in the page's fenced blocks,
    continuation lines joined, comments dropped, placeholders substituted."""
    lines, fenced, i = page.read_text(encoding="utf-8").splitlines(), False, 0
    while i < len(lines):
        line, start = lines[i], i
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced:
            while line.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line.rstrip()[:-1] + " " + lines[i].strip()
            found = _command(line)
            if found:
                yield start + 1, *found
        i += 1


def _command(line: str) -> tuple[str, list[str]] | None:
    try:
        tokens = shlex.split(PLACEHOLDER.sub(SUBSTITUTE, line), comments=True)
    except ValueError:
        return None
    for k, token in enumerate(tokens):
        m = ENTRY.search(token) if not token.startswith("(") else None
        if m and (k == 0 or "=" in tokens[k - 1] or tokens[k - 1] in {"$(which", "&&", ";"}
                  or "/" in token or token.endswith(")")) or (m and k >= 1 and tokens[0] in {
                      "accelerate", "torchrun", "srun", "python", "time"}):
            return m.group(1), tokens[k + 1:]
    return None


@contextlib.contextmanager
def _conf() -> Iterator[None]:
    """Hydra's config folder for composing, cleared afterwards (other tests initialize it)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        yield


@functools.cache
def _composed(overrides: tuple[str, ...]):
    """A job's effective config (the same job in several pages is composed once)."""
    return effective_config(compose(config_name="config", overrides=list(overrides)))


def check_run(args: list[str]) -> int:
    """Compose every job of a harness-run command; returns how many were composed."""
    with _conf():
        return _check_run(args)


def _check_run(args: list[str]) -> int:
    multirun = any(a in ("-m", "--multirun") for a in args)
    if any(a in ("-cd", "--config-dir", "-cp", "--config-path", "-cn", "--config-name") for a in args):
        raise AssertionError("check by hand: a config dir of the user's own")
    overrides = [a for a in args if not a.startswith("-")]
    parser = OverridesParser.create()
    parsed = parser.parse_overrides(overrides)
    # Hydra's own order: the sweep's master config takes the overrides that sweep nothing
    master = compose(config_name="config", overrides=[o.input_line for o in parsed
                                                      if not o.is_sweep_override()],
                     return_hydra_config=True)
    if not multirun:
        assert not any(o.is_sweep_override() for o in parsed), "a sweep without -m"
        _composed(tuple(overrides))
        return 1
    sweeper = master.hydra.sweeper
    params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    if "adaptbench_search" in str(sweeper.get("_target_")):
        return _check_search(params + overrides)
    jobs = BasicSweeper.split_arguments(parser.parse_overrides(params + overrides), None)[0]
    for job in jobs[:MAX_JOBS]:
        _composed(tuple(job))
    return len(jobs)


def _check_search(arguments: list[str]) -> int:
    from harness.search.plan import plan_search, split_arguments

    strategies, shared = split_arguments(OverridesParser.create().parse_overrides(arguments))
    loader = GlobalHydra.instance().config_loader()

    def group_options(key: str) -> list[str]:
        try:
            return list(loader.get_group_options(key))
        except Exception:
            return []

    plan = plan_search(strategies, shared, lambda ov: _composed(tuple(ov)),
                       group_options, lambda cfg: ("task", 100))
    return len(plan.strategies)


def check_make_task(args: list[str]) -> int:
    with _conf():
        compose(config_name="make_task", overrides=[a for a in args if not a.startswith("-")])
    return 1


def check_report(args: list[str]) -> int:
    from harness.report.cli import _apply_settings, _parser

    ap = _parser()
    _apply_settings(ap, ap.parse_args(args))
    return 1


def check_export(args: list[str]) -> int:
    from harness.export.cli import _parser

    _parser().parse_args(args)
    return 1


def check_track(args: list[str]) -> int:
    from harness.tracking.cli import _parser

    _parser().parse_args(args)
    return 1


CHECKS = {"harness-run": check_run, "harness-calibrate": check_run,
          "harness-make-task": check_make_task, "harness-report": check_report,
          "harness-export": check_export, "harness-track": check_track}
# commands that cannot be composed here, each with the reason (kept short on purpose)
BY_HAND = {("docs/extending.md", "--config-dir"): "the user's own config folder",
           ("docs/extending.md", "-cd"): "the user's own config folder"}


def _all_commands() -> list[tuple[str, int, str, list[str]]]:
    return [(str(p.relative_to(ROOT)), line, entry, args)
            for p in PAGES for line, entry, args in commands(p)]


def test_every_command_in_the_docs_composes():
    found, failed, by_hand = _all_commands(), [], []
    for page, line, entry, args in found:
        if any((page, a) in BY_HAND for a in args):
            by_hand.append(f"{page}:{line}")
            continue
        try:
            CHECKS[entry](args)
        except SystemExit as e:  # argparse: the message is on stderr, the code here
            failed.append(f"{page}:{line}: {entry} {' '.join(args)}: exit {e.code}")
        except Exception as e:  # noqa: BLE001 - any failure is the page's
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            failed.append(f"{page}:{line}: {entry} {' '.join(args)}\n    {first}")
    assert len(found) >= 60 and {e for *_, e, _ in found} >= set(CHECKS) - {"harness-calibrate"}
    assert len(by_hand) <= 2, by_hand
    assert not failed, "\n".join(failed)


def test_a_broken_example_fails_with_its_page_and_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Text.\n\n```bash\nharness-run -m strategy=prompt,rag \\\n  strategy.k=1,3\n"
                    "harness-report results/multirun/<date_time> --no-such-option\n```\n")
    (run_line, _, run_args), (report_line, _, report_args) = commands(page)
    assert (run_line, report_line) == (4, 6) and "results/multirun/placeholder" in report_args
    with pytest.raises(Exception, match="strategy.k"):  # prompt has no k: Hydra rejects the job
        check_run(run_args)
    with pytest.raises(SystemExit):
        check_report(report_args)
    with pytest.raises(Exception, match="no_such_key"):
        check_run(["strategy=rag", "strategy.no_such_key=1"])


def _links(page: Path) -> Iterator[tuple[int, str]]:
    for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            yield n, target
        for code in re.findall(r"`([^`\s]+)`", line):
            if REPO_PATH.match(code) and not re.search(r"[*<>{}]", code):
                yield n, "/" + code  # relative to the repo


def _ignored(path: Path) -> bool:
    """Output the repo ignores (bench/out/perf.json: what make bench writes)."""
    return subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(path)],
                          capture_output=True).returncode == 0


def test_links_and_paths_to_the_repo_exist():
    missing = []
    for page in PAGES:
        for n, target in _links(page):
            path = target.split("#")[0]
            if not path or re.match(r"^[a-z]+:", path):
                continue
            where = ROOT / path.lstrip("/") if path.startswith("/") else page.parent / path
            if not where.exists() and not _ignored(where):
                missing.append(f"{page.relative_to(ROOT)}:{n}: {target}")
    assert not missing, "\n".join(missing)


def test_the_config_comments_point_to_pages_that_exist():
    stale = []
    for path in [*config_dir().rglob("*.yaml"), *(ROOT / "harness").rglob("*.py")]:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for page in re.findall(r"docs/([\w-]+\.md)", line):
                if not (ROOT / "docs" / page).exists():
                    stale.append(f"{path.relative_to(ROOT)}:{n}: docs/{page}")
            if re.search(r"README[\"' ]+\(?[\"“]?[A-Z]", line) or re.search(r"README: [A-Z]", line):
                stale.append(f"{path.relative_to(ROOT)}:{n}: a README section (the README "
                             "is a front door: point to the docs page)")
    assert not stale, "\n".join(stale)
