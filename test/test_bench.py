"""`wm-ros bench`: the JSON a tiny grid writes, and the exit code of bad input."""

import json
import logging

import pytest
import torch

from wm_ros.cli import main as cli_main
from wm_ros.eval.bench import datasheet_peak, int_list


def test_a_tiny_grid_writes_the_design_keys_stages_flops_and_a_plot(tmp_path):
    out = tmp_path / "bench.json"
    code = cli_main(["bench", "--json", str(out), "--n", "4,8", "--horizon", "8", "--iters", "1",
                     "--steps", "1", "--res", "64", "--repeats", "2", "--warmup", "1",
                     "--threads", "1", "--seed", "3"])  # fmt: skip
    assert code == 0
    doc = json.loads(out.read_text())
    assert isinstance(doc["device"], str) and doc["seed"] == 3
    assert {"torch", "python"} <= set(doc["versions"]) and doc["machine"]["cpu"]
    assert [r["n"] for r in doc["results"]] == [4, 8]
    for r in doc["results"]:
        assert {"n", "horizon", "iters", "steps", "res", "backend", "replans_per_s"} <= set(r)
        assert (r["horizon"], r["iters"], r["steps"], r["res"]) == (8, 1, 1, 64)
        assert r["backend"] == "torch" and r["weights"] == "trained"
        lat = r["latency_ms"]
        assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"]
        assert r["replans_per_s"] > 0
        assert set(r["stages_ms"]) == {"encode", "fk", "prompts", "actions", "denoiser", "cost",
                                       "cem_update", "other"}  # fmt: skip
        assert r["flops"]["per_replan"] > r["flops"]["denoiser_per_replan"] > 0
        assert r["achieved"]["denoiser_fraction_of_peak"] > 0
        assert r["denoiser_time_by_op"]["conv"] > 0.3  # convolutions dominate the time
    # FLOPs grow in proportion to the candidates (the encoder's share is fixed).
    f4, f8 = (r["flops"]["denoiser_eval"] for r in doc["results"])
    assert f8 == 2 * f4
    assert doc["peak"]["fp32_flop_s"] > 0 and "measured" in doc["peak"]["how"]
    assert out.with_suffix(".png").is_file()


@pytest.mark.parametrize(
    "extra",
    [["--n", "0"], ["--horizon", "8,x"], ["--backend", "tensorrt"], ["--precision", "fp16"]],
)
def test_bad_grid_values_exit_2_with_a_message(extra, capsys):
    with pytest.raises(SystemExit) as err:
        cli_main(["bench", *extra])
    assert err.value.code == 2
    assert "expected" in capsys.readouterr().err


def test_a_missing_model_or_bad_resolution_exits_2(tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        assert cli_main(["bench", "--model", str(tmp_path / "none")]) == 2
        assert "not found" in caplog.text
        assert cli_main(["bench", "--res", "30"]) == 2
        assert "multiples of 4" in caplog.text
        if not torch.cuda.is_available():
            assert cli_main(["bench", "--device", "cuda"]) == 2
            assert "no CUDA device" in caplog.text


def test_grid_parsing_and_the_gpu_table():
    assert int_list("64, 256") == [64, 256]
    assert datasheet_peak("NVIDIA H100 80GB HBM3")["bf16_flop_s"] == 989e12
    assert datasheet_peak("NVIDIA H100 PCIe")["bf16_flop_s"] == 756e12
    assert datasheet_peak("Some CPU") is None
