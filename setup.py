"""Ships the repository's conf/ inside the package as harness/conf, so an installed
`harness-run` finds its configs from any directory. Everything else is in pyproject.toml.

In a checkout (and an editable install) the runner reads conf/ at the repository root."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithConf(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # the checkout's conf/ is used in place
        source = Path(__file__).resolve().parent / "conf"
        target = Path(self.build_lib) / "harness" / "conf"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithConf})
