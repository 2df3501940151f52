"""A study projected to a target model (harness.cost.target, report.project_model): the shipped
configs size to the published parameter counts, rescaled work equals work counted on the
target's shape, and the smallest plan that fits a GPU is the one the arithmetic says."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.cost.memory import Dims
from harness.cost.target import gpu_plans, load_target, rescale, shape_of, smallest_fit
from harness.cost.work import Shape, add
from harness.report.cli import main as report_main
from harness.system import config_dir

SMOLLM2 = {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
           "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
           "tie_word_embeddings": True}


def target(name: str):
    return load_target(name, [config_dir()])


@pytest.mark.parametrize("name, billions", [("llama-3.1-8b", 8.03), ("qwen2.5-7b", 7.62),
                                            ("llama-3.1-70b", 70.55)])
def test_the_shipped_models_have_their_published_sizes(name, billions):
    assert target(name).dims.params / 1e9 == pytest.approx(billions, rel=0.005)


def _shape(d: Dims) -> Shape:
    s = shape_of(d)
    return Shape(layers=s["layers"], d_attn=s["d_attn"], d_kv=s["d_kv"],
                 body_params=s["body_params"], head_params=s["head_params"], bytes_per_param=2)


def _work(shape: Shape, trainable: int, total: int) -> dict:
    w: dict = {}
    for rows, width in ((8, 96), (8, 64), (3, 40)):  # training passes, as harness.tuning counts
        add(w, shape.train_pass(rows, width, trainable, total, total))
    add(w, {"optim_params": trainable * 3})
    add(w, shape.forward(16, 120, 4))  # choice scoring: logits at 4 positions per row
    add(w, shape.decode(16, 20, 120))
    return w


def test_rescaled_work_is_the_work_counted_on_the_target():
    src, dst = Dims.from_config(SMOLLM2), target("llama-3.1-8b").dims
    a, b = _shape(src), _shape(dst)
    counted = _work(b, dst.params, dst.params)
    rescaled = rescale(_work(a, src.params, src.params), shape_of(src), shape_of(dst), dst.params)
    for key in ("fwd_flops", "fwd_attn_flops", "train_flops/full", "train_wgrad_flops",
                "optim_params", "decode_bytes/16", "decode_flops/16"):
        # attention inside training and decode FLOPs scales with layers x width, not with
        # the parameters: a few percent at these lengths
        assert rescaled[key] == pytest.approx(counted[key], rel=0.05), key
    assert rescaled["train_positions"] == counted["train_positions"]


def test_the_smallest_plan_that_fits_follows_the_memory_model():
    llama8, llama70 = target("llama-3.1-8b").dims, target("llama-3.1-70b").dims
    full = {"trains": "all", "batch": 8, "seq": 256}
    lora = {"trains": "adapter", "batch": 8, "seq": 256, "adapter_rank": 16,
            "adapter_per_layer_width": 2.0 * 16 * 2}  # r x (in + out) for q and v, per unit width
    # 8B full tuning: 16 bytes per parameter of model states (128 GB) and autocast's bf16
    # copies, 2 more: not one 80 GB GPU; over 2 GPUs 73.1 GB, above 90% of 80; over 4, 37 GB
    words, peak, factor, gpus = smallest_fit(full, llama8, 80)
    assert gpus == 4 and "FSDP" in words and factor == pytest.approx(4 / 3)
    assert peak == pytest.approx(37.0, abs=0.5)
    assert smallest_fit(full, llama8, 80 / 0.9 * 73.2 / 72)[3] == 2  # a little more memory: 2
    assert smallest_fit(lora, llama8, 80)[0] == "1 GPU"
    assert smallest_fit(lora, llama8, 24)[0] != "1 GPU"  # an L4: 16 GB of bf16 weights + more
    # 70B LoRA: 141 GB of bf16 weights; a 4-bit base fits one 80 GB GPU
    assert "QLoRA" in smallest_fit(lora, llama70, 80)[0]
    # 70B full tuning: 1.1 TB of states, over 8 GPUs still 141 GB each
    assert smallest_fit(full, llama70, 80) is None
    inference = {"trains": "none", "batch": 16, "seq": 400, "choices": 4, "choice_tokens": 6}
    assert smallest_fit(inference, llama8, 80)[0] == "1 GPU"
    assert [w for w, _, _ in gpu_plans(inference, llama70)][:2] == ["1 GPU", "weights split over 2 GPUs"]


def test_the_report_projects_the_study_to_a_target_model(quick_sweep, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    shutil.copytree(quick_sweep, sweep)
    plan = json.loads((sweep / "2_lora_seed0" / "metrics.json").read_text())["memory"]["plan"]
    assert plan["trains"] == "adapter" and plan["batch"] > 0
    assert report_main([str(sweep), "report.project_to=[A100]",
                        "report.project_model=llama-3.1-8b"]) == 0
    report = (sweep / "report.md").read_text()
    section = report.split("Projected to Llama-3.1-8B (8.03 B parameters")[1]
    assert "This study on Llama-3.1-8B with A100 (80 GB): " in section
    assert "| lora" in section and "1 GPU" in section and "FSDP over" in section
    # 70B: full tuning fits no 8 GPUs of 80 GB (159 GB each), so no time or cost is given;
    # a tuned model is served on the GPUs its 141 GB of bf16 weights need
    assert report_main([str(sweep), "report.project_to=[A100]",
                        "report.project_model=llama-3.1-70b"]) == 0
    section = (sweep / "report.md").read_text().split("Projected to Llama-3.1-70B")[1]
    assert "full does not fit 8 GPUs of 80 GB;" in section or "full does not fit 8 GPUs of 80 GB." in section
    full_row = next(r for r in section.splitlines() if r.startswith("| full | A100"))
    assert full_row.count("n/a") == 3  # peak, build and build cost; serving it fits 4 GPUs
    assert "lora 1 GPU, QLoRA (4-bit base)" in section and "served on 4 GPUs" in section
    assert report_main([str(sweep), "report.project_model=llama-3.1-8b"]) == 2
    assert "needs the hardware" in capsys.readouterr().err
    assert report_main([str(sweep), "report.project_to=[A100]", "report.project_model=gpt-9"]) == 2
    assert "no model 'gpt-9'" in capsys.readouterr().err
