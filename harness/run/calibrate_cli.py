"""`harness-calibrate`: measure this machine's profile for a model ahead of a sweep (what
runs would otherwise calibrate, section by section, the first time they need one).

    harness-calibrate                                  the bundled model, as runs load it
    harness-calibrate model=tiny-random torch_threads=1
    harness-calibrate cost.recalibrate=true           measure again (e.g. it was calibrated
                                                       while the machine was busy)
Takes the main config (conf/config.yaml), so the model, dtype, embedder, answer.batch_size,
torch_threads and cache_dir are the ones a run with the same overrides uses."""

from __future__ import annotations

import logging

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from harness.cost.profile import MachineProfile
from harness.models import get_lm
from harness.retrieval import get_embedder
from harness.run.calibration import measurer
from harness.system import cache_root, config_dir

log = logging.getLogger(__name__)

EVERY = ("fwd_calls", "train_flops/frozen", "train_flops/full", "optim_params",
         "train_eval_flops", "train_runs", "embed_flops", "search_flops", "bm25_tokens")


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def _main(cfg: DictConfig) -> None:
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    lm = get_lm(OmegaConf.to_container(cfg.model, resolve=True))
    embedder_cfg = OmegaConf.to_container(cfg.embedder, resolve=True)
    profile = MachineProfile.open(cache_root(cfg.get("cache_dir")), lm,
                                  embedder=str(embedder_cfg["name_or_path"]),
                                  folder=cfg.cost.get("profile_dir"))
    work = {k: 1.0 for k in EVERY}
    work[f"decode_steps/{int(cfg.answer.batch_size)}"] = 1.0
    seconds = profile.ensure(work, measurer(lm, lambda: get_embedder(embedder_cfg)),
                             repeats=int(cfg.cost.get("calibration_repeats", 2)),
                             force=bool(cfg.cost.get("recalibrate", False)))
    print(f"machine profile: {profile.path} ({seconds:.1f} s calibrating)")
    for name, sec in sorted(profile.sections.items()):
        coef = ", ".join(f"{k} {v:.3g}" for k, v in sec["coef"].items())
        busy = sec.get("others_cpu_share")
        print(f"  {name:<28} ±{sec['uncertainty']:.0%}  s per unit: {coef}"
              + (f"  (others used {busy:.0%} of the CPUs)" if busy else ""))


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
