"""The suite's small served model: conf/model/small-random.yaml's weights as a GGUF file
that llama.cpp's own converter writes, for the served-model tests and the
served_agreement bench section on a model that answers in milliseconds."""

from __future__ import annotations

from pathlib import Path


def small_random_gguf(folder: Path) -> tuple[Path, Path]:
    """conf/model/small-random.yaml's model (SmolLM2's architecture, small, random weights)
    saved as a Hugging Face folder and converted to an f32 GGUF by llama.cpp's own converter:
    the same weights in process and served. Returns (gguf, the HF folder: its tokenizer)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from harness.export.gguf import hf_to_gguf
    from harness.models.loading import load_model
    from harness.run.runner import CONF_DIR

    hf, gguf = folder / "small-random-hf", folder / "small-random.f32.gguf"
    if not gguf.is_file():
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=["model=small-random"])
        model, tokenizer = load_model(OmegaConf.to_container(cfg.model, resolve=True))
        model.save_pretrained(hf)
        tokenizer.save_pretrained(hf)
        hf_to_gguf(hf, gguf, "f32")
    return gguf, hf
