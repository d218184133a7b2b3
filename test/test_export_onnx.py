"""ONNX export + onnxruntime backend: parity with torch, the same CEM choice, the fast path."""

import logging

import numpy as np
import pytest
import torch

from wm_ros.cli import main as cli_main
from wm_ros.config import CEMConfig, ModelConfig, PlannerConfig, PlanningSessionConfig, SimConfig
from wm_ros.export.onnx import export_onnx, fingerprint, read_manifest
from wm_ros.export.ort import OnnxWorldModel
from wm_ros.export.parity import TOLERANCE, check_parity
from wm_ros.model import WorldModel, save_model
from wm_ros.model.fast import FastWorldModel
from wm_ros.planning.session import PlanningSession
from wm_ros.sim import TabletopSim

TINY = ModelConfig(
    image_size=16, latent_channels=2, ae_width=8, horizon=4, context=2, memory=1,
    widths=(8, 16), emb_dim=16, prompt_features=2,
)  # fmt: skip


def tiny_model(cfg: ModelConfig = TINY) -> WorldModel:
    """Random weights, the zero-initialised heads (mask, injections) made non-zero too, so
    every branch of the denoiser shows up in the comparison."""
    torch.manual_seed(0)
    model = WorldModel(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_model()
    directory = save_model(model, tmp_path_factory.mktemp("tiny"))
    export_onnx(model, directory / "onnx")
    return model, directory


def test_every_graph_and_a_rollout_match_torch_within_tolerance(exported):
    model, directory = exported
    manifest = read_manifest(directory / "onnx")
    assert set(manifest["graphs"]) == {"encoder", "actions", "denoiser", "decoder"}
    assert manifest["fingerprint"] == fingerprint(model)
    diffs = check_parity(model, directory / "onnx", n=3)  # batch 3: the export used 2
    assert set(diffs) == {"encoder", "actions", "denoiser", "decoder", "rollout"}
    assert max(diffs.values()) <= TOLERANCE, diffs


def test_the_per_frame_head_exports_with_its_third_injection(tmp_path):
    model = tiny_model(TINY.replace(adapter_from_base=True, frame_head=4))
    export_onnx(model, tmp_path)
    manifest = read_manifest(tmp_path)
    assert manifest["graphs"]["actions"]["outputs"] == ["inj0", "inj1", "inj2"]
    assert "inj2" in manifest["graphs"]["denoiser"]["inputs"]
    assert max(check_parity(model, tmp_path, n=2, steps=1).values()) <= TOLERANCE


def test_joint_conditioning_without_memory_exports_too(tmp_path):
    model = tiny_model(TINY.replace(conditioning="joints", memory=0))
    export_onnx(model, tmp_path)
    assert "memory" not in read_manifest(tmp_path)["graphs"]["denoiser"]["inputs"]
    assert max(check_parity(model, tmp_path, n=2, steps=1).values()) <= TOLERANCE


def test_a_residual_model_samples_alike_through_every_backend(tmp_path):
    """The stand-ins borrow WorldModel's sampler, so they add the last context latent back
    too; the flag travels in the export's manifest and changes the fingerprint."""
    model = tiny_model(TINY.replace(residual=True, residual_scale=0.5))
    export_onnx(model, tmp_path)
    assert read_manifest(tmp_path)["model"]["residual"] is True
    assert OnnxWorldModel(tmp_path).cfg == model.cfg
    assert fingerprint(model) != fingerprint(tiny_model())  # same weights, other flow data
    assert max(check_parity(model, tmp_path, n=2).values()) <= TOLERANCE
    g = torch.Generator().manual_seed(1)
    ctx, mem = torch.randn(2, 2, 2, 4, 4, generator=g), torch.randn(2, 1, 2, 4, 4, generator=g)
    cond = torch.rand(2, 6, 3, 16, 16, generator=g)  # two chunks
    with torch.no_grad():
        ref, fast = (
            m.rollout(ctx, mem, cond, generator=torch.Generator().manual_seed(0))
            for m in (model, FastWorldModel(model, "fp32"))
        )
    torch.testing.assert_close(fast, ref, rtol=0, atol=0)


def test_an_export_of_other_weights_is_refused(exported):
    _, directory = exported
    with pytest.raises(ValueError, match="other weights"):
        OnnxWorldModel(directory / "onnx", expect_fingerprint="0" * 16)
    with pytest.raises(ValueError, match="export-onnx"):
        OnnxWorldModel(directory)  # the model directory itself holds no graphs


@pytest.fixture(scope="module")
def observations():
    with TabletopSim(SimConfig(image_width=32, image_height=32)) as sim:
        sim.reset(3)
        cam = sim.camera_model()
        yield {
            "camera": (cam.width, cam.height, cam.k.ravel(), cam.d),
            "frame": sim.render(),
            "joints": (sim.joint_names, sim.joint_positions()),
            "goal": np.asarray(sim.task.goal_image),
        }


def replan(session: PlanningSession, obs: dict, times: int = 2):
    session.set_camera(*obs["camera"])
    for i in range(3):
        session.add_image(obs["frame"], 10.0 + 0.1 * i)
    session.set_joints(*obs["joints"], 10.2)
    session.set_goal(obs["goal"])
    return [session.replan(10.2 + 0.1 * k)[0] for k in range(times)]


def test_both_backends_make_the_same_cem_choices_under_one_seed(exported, observations):
    model, directory = exported
    planner = PlannerConfig(
        horizon=4, sampler_steps=2, cem=CEMConfig(num_samples=24, num_elites=4, iterations=2)
    )
    plans = {}
    for backend in ("torch", "onnxruntime"):
        cfg = PlanningSessionConfig(model=str(directory), backend=backend, planner=planner)
        session = PlanningSession(cfg, model)
        if backend == "onnxruntime":
            assert isinstance(session.world, OnnxWorldModel)
            assert session.world.directory == directory / "onnx"  # the export, not a fresh one
        plans[backend] = replan(session, observations)  # the second replan warm-starts
    for a, b in zip(plans["torch"], plans["onnxruntime"], strict=True):
        np.testing.assert_array_equal(a.targets, b.targets)
        assert a.cost == pytest.approx(b.cost, abs=1e-4)
        np.testing.assert_allclose(a.latents.numpy(), b.latents.numpy(), atol=TOLERANCE)


def test_a_session_without_a_matching_export_exports_its_own(observations, caplog):
    model = tiny_model()
    planner = PlannerConfig(horizon=4, cem=CEMConfig(num_samples=8, num_elites=2, iterations=1))
    cfg = PlanningSessionConfig(model="no/such/model", backend="onnxruntime", planner=planner)
    with caplog.at_level(logging.WARNING):
        session = PlanningSession(cfg, model)
    assert "exporting to" in caplog.text
    assert read_manifest(session.world.directory)["fingerprint"] == fingerprint(model)
    assert replan(session, observations, times=1)[0].targets.shape == (4, 4)


def test_backend_and_precision_are_validated():
    with pytest.raises(ValueError, match="backend"):
        PlanningSessionConfig(backend="tensorrt")
    with pytest.raises(ValueError, match="precision"):
        PlanningSessionConfig(precision="fp16")
    with pytest.raises(ValueError, match="onnxruntime"):
        PlanningSessionConfig(backend="onnxruntime", precision="bf16")


def test_the_fast_path_in_fp32_is_the_model_and_bf16_stays_close():
    model = tiny_model()
    g = torch.Generator().manual_seed(1)
    ctx, mem = torch.randn(3, 2, 2, 4, 4, generator=g), torch.randn(3, 1, 2, 4, 4, generator=g)
    cond = torch.rand(3, 4, 3, 16, 16, generator=g)

    def run(m):
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            return m.rollout(ctx, mem, cond, steps=2, generator=gen, shared_noise=True)

    ref = run(model)
    torch.testing.assert_close(run(FastWorldModel(model, "fp32")), ref, rtol=0, atol=0)
    low = run(FastWorldModel(model, "bf16"))
    assert low.dtype == torch.float32
    assert float((low - ref).abs().max()) < 0.1 * float(ref.abs().max())  # bf16: ~3 digits


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graphs_replay_the_eager_rollout():
    model = tiny_model().to("cuda")
    g = torch.Generator("cuda").manual_seed(1)
    ctx = torch.randn(8, 2, 2, 4, 4, generator=g, device="cuda")
    mem = torch.randn(8, 1, 2, 4, 4, generator=g, device="cuda")
    cond = torch.rand(8, 4, 3, 16, 16, generator=g, device="cuda")
    fast = FastWorldModel(model, "fp32", cuda_graphs=True)
    outs = []
    for m in (model, fast, fast):  # the second fast call replays the captured graph
        gen = torch.Generator("cuda").manual_seed(0)
        with torch.no_grad():
            outs.append(m.rollout(ctx, mem, cond, steps=2, generator=gen, shared_noise=True))
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(outs[2], outs[1], rtol=0, atol=0)
    frames = np.random.default_rng(0).integers(0, 255, (3, 16, 16, 3), dtype=np.uint8)
    torch.testing.assert_close(fast.encode_frames(frames), model.encode_frames(frames))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_onnxruntime_on_cuda_matches_torch(exported):
    pytest.importorskip("onnxruntime")
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed (requirements-gpu.txt)")
    model, directory = exported
    world = OnnxWorldModel(directory / "onnx", "cuda")
    frames = np.random.default_rng(0).integers(0, 255, (3, 16, 16, 3), dtype=np.uint8)
    got = world.encode_frames(frames)
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.cpu(), model.encode_frames(frames), rtol=1e-3, atol=1e-3)


def test_export_command_writes_the_graphs_and_checks_parity(exported, tmp_path, caplog):
    _, directory = exported
    out = tmp_path / "graphs"
    with caplog.at_level(logging.INFO):
        code = cli_main(["export-onnx", "--model", str(directory), "--out", str(out),
                         "--json", str(tmp_path / "parity.json")])  # fmt: skip
    assert code == 0 and (out / "denoiser.onnx").is_file()
    assert "parity" in caplog.text and "ok" in caplog.text
    assert (tmp_path / "parity.json").is_file()


def test_export_command_without_a_model_exits_2_with_the_reason(tmp_path, caplog):
    code = cli_main(["export-onnx", "--model", str(tmp_path / "missing"), "--out", str(tmp_path)])
    assert code == 2 and "does not exist" in caplog.text
