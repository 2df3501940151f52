"""Which run an export carries out, and whether it can: a run folder, or a sweep folder and
a variant (by default the report's most accurate one). Every refusal is one line naming the
folder and what to do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.cache import is_whole
from harness.errors import UserError
from harness.run_folders import Run, read_runs

KINDS = ("prompt", "retrieval", "tuned", "hybrid")


@dataclass
class Source:
    run: Run
    config: DictConfig  # the run's resolved config (config.yaml)
    why: str  # how it was chosen, for the export's README

    @property
    def metrics(self) -> dict[str, Any]:
        return self.run.metrics

    @property
    def trains(self) -> bool:
        return bool(self.metrics.get("trains"))

    @property
    def retrieves(self) -> bool:
        return self.metrics.get("retrieval_k") is not None

    @property
    def kind(self) -> str:
        """prompt | retrieval (rag, retrieval_only) | tuned (PEFT, full) | hybrid."""
        if self.trains:
            return "hybrid" if self.retrieves else "tuned"
        return "retrieval" if self.retrieves else "prompt"

    @property
    def peft(self) -> bool:
        """Its artifact is a PEFT adapter (LoRA, DoRA, IA3, prompt tuning, QLoRA)."""
        return "adapter" in self.config.strategy

    @property
    def artifact_dir(self) -> Path | None:
        notes = (self.metrics.get("fit") or {}).get("notes") or {}
        path = notes.get("artifact_dir")
        return Path(path) if path else None

    @property
    def label(self) -> str:
        return self.run.variant or self.run.strategy


def find_source(path: Path, variant: str | None = None) -> Source:
    """The run to export: `path` itself when it is a run folder, else the complete test run
    of `variant` in the sweep (its lowest seed), by default the most accurate variant."""
    if not path.is_dir():
        raise UserError(f"{path}: not a directory (give a run folder or a sweep folder)")
    runs = read_runs([path])
    if (path / "metrics.json").is_file():
        run = next((r for r in runs if r.path.resolve() == path.resolve()), None)
        if run is None:
            raise UserError(f"{path}: cannot read its metrics.json")
        return _checked(Source(run, _config(run), f"the run folder {path}"))
    if not runs:
        raise UserError(f"{path}: no run folders (with metrics.json) under it")
    tested = [r for r in runs if r.complete and not r.on_val]
    if variant is None:
        from harness.report.variants import make_variants

        variants = make_variants(runs)
        if not variants:
            raise UserError(f"{path}: no complete test run to export")
        best = max(variants, key=lambda v: v.estimate.mean)
        variant, why = best.name, (f"the most accurate variant of {path} "
                                   f"({best.runs[0].primary_metric} {best.estimate.mean:.3f})")
    else:
        why = f"variant '{variant}' of {path}"
    chosen = sorted((r for r in tested if r.variant == variant),
                    key=lambda r: int(r.metrics.get("seed", 0)))
    if not chosen:
        names = sorted({r.variant for r in tested})
        raise UserError(f"{path}: no complete test run of variant '{variant}'; choose one of: "
                        f"{', '.join(names) or '(none)'}")
    run = chosen[0]
    if len(chosen) > 1:
        why += f"; seed {run.metrics.get('seed', 0)}, the lowest of {len(chosen)} seeds"
    return _checked(Source(run, _config(run), why))


def _config(run: Run) -> DictConfig:
    path = run.path / "config.yaml"
    if not path.is_file():
        raise UserError(f"{run.path}: no config.yaml: the run's settings are unknown")
    return OmegaConf.load(path)


def _checked(src: Source) -> Source:
    r = src.run
    if not r.complete:
        raise UserError(f"{r.path}: the run is {r.status}, not complete: nothing it measured "
                        "to carry out (export a complete run)")
    if r.metrics.get("served"):
        raise UserError(f"{r.path}: its model is served ({r.metrics.get('model')}): its weights "
                        "are the server's, nothing to export; the prompt and the retrieval "
                        "settings are in its config.yaml")
    if (r.metrics.get("search") or {}).get("pruned"):
        raise UserError(f"{r.path}: a pruned search trial: its model was never finished nor "
                        "kept; export the search's final run")
    if src.trains:
        art = src.artifact_dir
        if art is None or not is_whole(art):
            raise UserError(f"{r.path}: its trained artifact is gone ({art or 'never kept'}): the "
                            "cache was cleared or moved; run it again (same config and seed: the "
                            "same artifact) and export that run")
    return src
