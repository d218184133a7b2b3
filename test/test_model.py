"""The world model: shapes, AVID mask and zero-initialised injection, the flow sampler,
checkpoints, and that a tiny model can fit a tiny dataset."""

import json

import numpy as np
import pytest
import torch

from wm_ros.config import ModelConfig, TrainConfig
from wm_ros.data import sim_episodes
from wm_ros.model import (
    CheckpointError,
    VelocityParts,
    WorldModel,
    flow,
    load_model,
    save_model,
)
from wm_ros.train import Trainer

TINY = ModelConfig(
    image_size=16, latent_channels=2, ae_width=8, horizon=3, context=2, memory=1,
    widths=(8, 16), emb_dim=16, prompt_features=2,
)  # fmt: skip
N = 3


def inputs(cfg: ModelConfig, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    s, c, h = cfg.latent_size, cfg.latent_channels, cfg.horizon
    cond = (
        torch.rand(N, h, cfg.prompt_channels, cfg.image_size, cfg.image_size, generator=g)
        if cfg.conditioning == "prompt"
        else torch.randn(N, h, cfg.num_joints, generator=g)
    )
    return {
        "x": torch.randn(N, h, c, s, s, generator=g),
        "t": torch.rand(N, generator=g),
        "d": torch.full((N,), 0.5),
        "context": torch.randn(N, cfg.context, c, s, s, generator=g),
        "memory": torch.randn(N, cfg.memory, c, s, s, generator=g),
        "cond": cond,
    }


def model(cfg: ModelConfig = TINY, seed: int = 0) -> WorldModel:
    torch.manual_seed(seed)
    return WorldModel(cfg).eval()


ABLATIONS = {
    "full": TINY,
    "joints": TINY.replace(conditioning="joints"),
    "no_mask": TINY.replace(use_mask=False),
    "no_base": TINY.replace(use_base=False),
    "no_memory": TINY.replace(memory=0),
    "from_base": TINY.replace(adapter_from_base=True),
    "frame_head": TINY.replace(adapter_from_base=True, frame_head=4),
    "frame_head_joints": TINY.replace(conditioning="joints", frame_head=4),
    "frame_head_no_base": TINY.replace(use_base=False, frame_head=4),
}


# ---------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", ABLATIONS)
def test_shapes_of_every_variant(name):
    cfg = ABLATIONS[name]
    m, inp = model(cfg), inputs(cfg)
    s, c = cfg.latent_size, cfg.latent_channels
    with torch.no_grad():
        parts = m.velocity_parts(**{k: v for k, v in inp.items() if k != "cond"}, cond=inp["cond"])
        assert parts.final.shape == (N, cfg.horizon, c, s, s)
        assert (parts.base is None) == (not cfg.use_base)
        assert (parts.mask is None) == (not cfg.use_mask or not cfg.use_base)
        frames = torch.rand(N, 2, 3, cfg.image_size, cfg.image_size)
        z = m.encode(frames)
        assert z.shape == (N, 2, c, s, s)
        assert m.decode(z).shape == frames.shape
        long_cond = torch.cat([inp["cond"], inp["cond"][:, :2]], dim=1)  # H + 2 steps
        rollout = m.rollout(inp["context"], inp["memory"], long_cond, steps=2)
        assert rollout.shape == (N, cfg.horizon + 2, c, s, s)


def test_wrong_frame_size_is_named():
    with pytest.raises(ValueError, match=r"frames must be \(\.\.\., 3, 16, 16\)"):
        model().encode(torch.rand(2, 3, 32, 32))


def test_invalid_configs_are_rejected():
    with pytest.raises(ValueError, match="conditioning"):
        ModelConfig(conditioning="text")
    with pytest.raises(ValueError, match="needs a base"):
        ModelConfig(use_base=False, use_mask=False)
    with pytest.raises(ValueError, match="multiple of 4"):
        ModelConfig(image_size=30)
    for ablation in ({"use_mask": False}, {"use_base": False}):
        with pytest.raises(ValueError, match="adapter_from_base needs use_base and use_mask"):
            TINY.replace(adapter_from_base=True, **ablation)


def test_action_free_model_needs_no_conditioning_and_adapter_model_does():
    base_only = model(TINY.replace(conditioning="none"))
    inp = inputs(TINY)
    assert base_only.adapter is None
    assert base_only.sample(inp["context"], inp["memory"], steps=1).shape == inp["x"].shape
    with pytest.raises(ValueError, match="needs action conditioning"):
        model().sample(inp["context"], inp["memory"], None, steps=1)


# ---------------------------------------------------------------------------------- AVID


def test_mask_is_one_half_at_initialisation_and_mixes_base_and_adapter():
    m, inp = model(), inputs(TINY)
    with torch.no_grad():
        parts = m.velocity_parts(**{k: v for k, v in inp.items() if k != "cond"}, cond=inp["cond"])
    assert torch.all(parts.mask == 0.5)
    torch.testing.assert_close(parts.final, 0.5 * parts.base + 0.5 * parts.adapter)
    assert not torch.allclose(parts.base, parts.adapter)  # a real mixture, not a tautology


@pytest.mark.parametrize(
    "conditioning, frame_head", [("prompt", 0), ("joints", 0), ("prompt", 4), ("joints", 4)]
)
def test_zero_initialised_injection_ignores_actions_at_init_but_learns_them(
    conditioning, frame_head
):
    cfg = TINY.replace(conditioning=conditioning, frame_head=frame_head)
    m = model(cfg)
    a, b = inputs(cfg, seed=0), inputs(cfg, seed=1)
    rest = {k: v for k, v in a.items() if k != "cond"}
    with torch.no_grad():
        out_a = m.velocity_parts(**rest, cond=a["cond"]).adapter
        out_b = m.velocity_parts(**rest, cond=b["cond"]).adapter
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=0)
    # The zero layers still get gradients: one optimiser step makes the actions matter.
    opt = torch.optim.Adam(m.adapter.parameters(), lr=1e-2)
    m.velocity(**rest, cond=a["cond"]).pow(2).mean().backward()
    opt.step()
    with torch.no_grad():
        out_a = m.velocity_parts(**rest, cond=a["cond"]).adapter
        out_b = m.velocity_parts(**rest, cond=b["cond"]).adapter
    assert (out_a - out_b).abs().max() > 1e-4


def test_no_mask_ablation_starts_exactly_at_the_base():
    m, inp = model(TINY.replace(use_mask=False)), inputs(TINY)
    with torch.no_grad():
        parts = m.velocity_parts(**{k: v for k, v in inp.items() if k != "cond"}, cond=inp["cond"])
    torch.testing.assert_close(parts.final, parts.base, rtol=0, atol=0)


def test_adapter_from_base_starts_exactly_at_the_base_with_the_mask_at_one_half():
    cfg = TINY.replace(adapter_from_base=True)
    m, inp = model(cfg), inputs(cfg)
    rest = {k: v for k, v in inp.items() if k != "cond"}
    with torch.no_grad():
        parts = m.velocity_parts(**rest, cond=inp["cond"])
    assert torch.all(parts.mask == 0.5)
    torch.testing.assert_close(parts.adapter, parts.base, rtol=0, atol=0)
    torch.testing.assert_close(parts.final, parts.base, rtol=0, atol=0)
    # Trained, the adapter's correction and then the mask move away from there (the mask has
    # no gradient until there is a correction to weigh: d final / d m = base - adapter).
    opt = torch.optim.Adam(m.adapter.parameters(), lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        m.velocity(**rest, cond=inp["cond"]).pow(2).mean().backward()
        opt.step()
    with torch.no_grad():
        parts = m.velocity_parts(**rest, cond=inp["cond"])
    assert (parts.adapter - parts.base).abs().max() > 1e-4
    assert (parts.mask - 0.5).abs().max() > 1e-4


def test_frame_head_starts_at_the_base_and_gives_each_frame_its_own_step_features():
    cfg = TINY.replace(adapter_from_base=True, frame_head=4)
    m, inp = model(cfg), inputs(cfg)
    rest = {k: v for k, v in inp.items() if k != "cond"}
    with torch.no_grad():
        parts = m.velocity_parts(**rest, cond=inp["cond"])
    torch.testing.assert_close(parts.final, parts.base, rtol=0, atol=0)  # zero-initialised
    head = m.adapter.frame_head
    with torch.no_grad():
        for p in head.parameters():
            p.add_(0.1 * torch.randn_like(p))
        inj = m.adapter.encode_actions(inp["cond"])
        assert len(inj) == 3 and inj[2].shape == (N, cfg.horizon * cfg.prompt_features, 4, 4)
        feats = torch.randn(N, cfg.widths[0], 4, 4)
        out = head(feats, inp["x"], inp["x"], inj[2])
        steps = inj[2].clone()
        f = cfg.prompt_features
        steps[:, f : 2 * f] += 1.0  # step 1's features only
        changed = (head(feats, inp["x"], inp["x"], steps) - out).abs().flatten(2).amax(-1)
    assert torch.all(changed[:, 1] > 1e-4)
    assert torch.all(changed[:, [0, 2]] == 0)


# ---------------------------------------------------------------------------------- sampler


@pytest.mark.parametrize("steps", [1, 2, 4, 7])
def test_euler_integrates_a_constant_velocity_exactly(steps):
    g = torch.Generator().manual_seed(3)
    x0, v = torch.randn(5, 2, 3, generator=g), torch.randn(5, 2, 3, generator=g)
    seen = []

    def velocity(x, t, d):
        seen.append((float(t[0]), float(d[0])))
        return v

    x1 = flow.euler_integrate(velocity, x0, steps)
    torch.testing.assert_close(x1, x0 + v)
    assert [t for t, _ in seen] == pytest.approx([k / steps for k in range(steps)])
    assert all(d == pytest.approx(1 / steps) for _, d in seen)


def test_sampler_repeats_under_a_seed_and_differs_across_seeds():
    def velocity(x, t, d):
        return torch.sin(x) * (1 - t)[:, None]

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return flow.sample(velocity, (4, 6), 4, shortcut_levels=3, generator=g)

    torch.testing.assert_close(run(0), run(0), rtol=0, atol=0)
    assert not torch.allclose(run(0), run(1))
    m, inp = model(), inputs(TINY)
    with torch.no_grad():
        a, b = (
            m.sample(inp["context"], inp["memory"], inp["cond"], steps=2,
                     generator=torch.Generator().manual_seed(7))
            for _ in range(2)
        )  # fmt: skip
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_noise_scale_zero_integrates_from_the_noise_mean_whatever_the_seed():
    def velocity(x, t, d):
        return torch.cos(x) + t[:, None]

    def run(seed, scale):
        g = torch.Generator().manual_seed(seed)
        return flow.sample(velocity, (3, 5), 2, shortcut_levels=3, generator=g, noise_scale=scale)

    from_zero = flow.euler_integrate(velocity, torch.zeros(3, 5), 2, 0.5)
    torch.testing.assert_close(run(0, 0.0), from_zero, rtol=0, atol=0)
    torch.testing.assert_close(run(1, 0.0), from_zero, rtol=0, atol=0)
    noise = torch.randn(3, 5, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(run(4, 0.5), flow.euler_integrate(velocity, 0.5 * noise, 2, 0.5))
    with pytest.raises(ValueError, match="noise_scale"):
        run(0, -0.1)
    # Through the world model: rollouts of two noise seeds agree at scale 0 only.
    m, inp = model(), inputs(TINY)
    with torch.no_grad():
        (a, b), (c, d) = (
            [m.rollout(inp["context"], inp["memory"], inp["cond"], steps=2, noise_scale=scale,
                       generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
            for scale in (0.0, 1.0)
        )  # fmt: skip
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(c, d)


def test_step_size_condition_uses_trained_sizes_only():
    assert flow.step_size_condition(1, 3) == 1.0
    assert flow.step_size_condition(4, 3) == 0.25
    assert flow.step_size_condition(3, 3) == 0.0  # not a power of two: plain flow velocity
    assert flow.step_size_condition(16, 3) == 0.0  # finer than the trained sizes
    with pytest.raises(ValueError, match="positive"):
        flow.step_size_condition(0, 3)


def test_shortcut_target_of_a_straight_flow_is_its_velocity():
    """For data - noise constant in time the two half steps agree with the whole step."""
    g = torch.Generator().manual_seed(0)
    noise, data = torch.randn(64, 3, generator=g), torch.randn(64, 3, generator=g)

    def velocity(x, t, d):  # the exact rectified-flow velocity of this coupling
        return data - noise

    x_t, t, d, target = flow.shortcut_batch(velocity, noise, data, 3, g)
    torch.testing.assert_close(target, data - noise)
    assert torch.all(t + d <= 1.0 + 1e-6) and set(d.tolist()) <= {1.0, 0.5, 0.25, 0.125}
    torch.testing.assert_close(x_t, noise + t[:, None] * (data - noise))


# ---------------------------------------------------------------------------------- residual

RESIDUAL = TINY.replace(residual=True, residual_scale=0.5)


def test_residual_sample_is_the_last_context_latent_plus_the_scaled_flow_sample():
    """Same weights, same noise: the flow is the same; residual adds it to the last frame."""
    plain, res = model(TINY, seed=4), model(RESIDUAL, seed=4)
    inp = inputs(TINY)
    with torch.no_grad():
        a, b = (
            m.sample(inp["context"], inp["memory"], inp["cond"], steps=2,
                     generator=torch.Generator().manual_seed(7))
            for m in (plain, res)
        )  # fmt: skip
    torch.testing.assert_close(b, inp["context"][:, -1:] + 0.5 * a)


@pytest.mark.parametrize("steps", [1, 2, 4])
@pytest.mark.parametrize("change", [0.0, 0.3])
def test_residual_model_predicting_a_constant_change_applies_it_per_chunk(steps, change):
    """A velocity field that flows every noise to the data `change` (the exact rectified-flow
    velocity (change - x) / (1 - t)): with change 0, "nothing changes", every future step
    reproduces the last context latent, in every autoregressive chunk; with change c, chunk k
    lies k * scale * c above it (each chunk relative to its own last context latent)."""
    m, inp, h = model(RESIDUAL), inputs(RESIDUAL), RESIDUAL.horizon

    def to_change(x, t, d, context, memory, **_):
        v = (change - x) / (1 - t).view(-1, 1, 1, 1, 1)
        return VelocityParts(v, None, None, None)

    m.velocity_parts = to_change
    cond = inp["cond"][:, [0, 1, 2, 0, 1, 2, 0]]  # (N, 2H + 1, ...): three chunks
    with torch.no_grad():
        z = m.rollout(inp["context"], inp["memory"], cond, steps=steps,
                      generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert z.shape[1] == 2 * h + 1
    chunk = torch.arange(z.shape[1]) // h + 1  # (L,) 1, 1, 1, 2, ...
    want = inp["context"][:, -1:] + (0.5 * change * chunk).view(1, -1, 1, 1, 1)
    torch.testing.assert_close(z, want.expand_as(z), rtol=0, atol=1e-5)


def test_residual_flag_survives_save_and_load(tmp_path):
    m, inp = model(RESIDUAL, seed=2), inputs(RESIDUAL)
    save_model(m, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.cfg == RESIDUAL and loaded.cfg.residual and loaded.cfg.residual_scale == 0.5
    with torch.no_grad():
        a, b = (
            x.sample(inp["context"], inp["memory"], inp["cond"],
                     generator=torch.Generator().manual_seed(3))
            for x in (m, loaded)
        )  # fmt: skip
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_config_without_the_residual_fields_loads_as_not_residual(tmp_path):
    """Models saved before the option existed keep predicting the future latents."""
    d = save_model(model(), tmp_path / "m")
    cfg = json.loads((d / "config.json").read_text())
    del cfg["model"]["residual"], cfg["model"]["residual_scale"]
    (d / "config.json").write_text(json.dumps(cfg))
    loaded = load_model(d)
    assert loaded.cfg == TINY and not loaded.cfg.residual
    cfg["model"].pop("adapter_from_base")  # nor before the adapter could start at the base
    (d / "config.json").write_text(json.dumps(cfg))
    assert not load_model(d).cfg.adapter_from_base
    with pytest.raises(ValueError, match="residual_scale"):
        TINY.replace(residual_scale=0.0)


# ---------------------------------------------------------------------------------- checkpoints


def test_save_load_gives_identical_outputs(tmp_path):
    m, inp = model(TINY, seed=5), inputs(TINY)
    with torch.no_grad():
        m.autoencoder.latent_std.fill_(2.0)  # buffers travel too
        before = m.velocity(**{k: v for k, v in inp.items() if k != "cond"}, cond=inp["cond"])
    save_model(m, tmp_path / "m", extra={"note": "test"})
    assert json.loads((tmp_path / "m" / "config.json").read_text())["note"] == "test"
    loaded = load_model(tmp_path / "m")
    assert loaded.cfg == TINY
    with torch.no_grad():
        after = loaded.velocity(**{k: v for k, v in inp.items() if k != "cond"}, cond=inp["cond"])
    torch.testing.assert_close(before, after, rtol=0, atol=0)
    assert float(loaded.autoencoder.latent_std[0]) == 2.0


def test_bad_model_directories_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nothing")
    d = save_model(model(), tmp_path / "m")
    (d / "model.safetensors").unlink()
    (d / "model.pt").write_bytes(b"pickle")
    with pytest.raises(CheckpointError, match=r"model.safetensors is missing.*model.pt"):
        load_model(d)
    (d / "model.safetensors").write_bytes(b"\x80\x04 not safetensors at all")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_model(d)
    save_model(model(), d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["model"]["widths"] = [16, 32]
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"does not match.*other shapes"):
        load_model(d)
    cfg["model"]["conditioning"] = "joints"
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"missing.*unexpected"):
        load_model(d)
    (d / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json is missing"):
        load_model(d)


# ---------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def tiny_episodes():
    return sim_episodes([0], steps=10, image_size=16)


FAST = TrainConfig(
    batch_size=8, lr=3e-3, warmup_steps=5, checkpoint_every=1000, log_every=10, val_fraction=0
)


def test_tiny_model_overfits_a_tiny_dataset(tmp_path, tiny_episodes):
    """The autoencoder stage fits 11 frames; then the base and the adapter each fit one fixed
    batch of windows (same noise and flow times every step: the loss can reach ~0)."""
    trainer = Trainer(tiny_episodes, tmp_path / "m", TINY, FAST.replace(shortcut_fraction=0.25))
    with torch.no_grad():
        first = [float(trainer.loss("autoencoder", trainer.data, (0, i))) for i in range(4)]
    trainer.run_stage("autoencoder", steps=100)
    with torch.no_grad():
        last = [float(trainer.loss("autoencoder", trainer.data, (0, i))) for i in range(4)]
    assert np.mean(last) < np.mean(first) / 5
    # The adapter starts from the base fitted to this batch: less left to gain.
    for stage, module, factor in (
        ("base", trainer.model.base, 8),
        ("adapter", trainer.model.adapter, 4),
    ):
        module.requires_grad_(True)
        opt = torch.optim.Adam(module.parameters(), lr=3e-3)
        losses = []
        for _ in range(60):
            loss = trainer.loss(stage, trainer.data, (7,))  # one fixed batch
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        assert losses[-1] < losses[0] / factor, (stage, losses[0], losses[-1])


def flow_data_of_one_batch(trainer: Trainer, stage: str, monkeypatch) -> dict:
    """The data (N, H, c, h, w) handed to flow_matching_batch and shortcut_batch by one loss."""
    seen = {}
    for name, pos in (("flow_matching_batch", 1), ("shortcut_batch", 2)):
        real = getattr(flow, name)

        def spy(*args, _real=real, _name=name, _pos=pos, **kw):
            seen[_name] = args[_pos]
            return _real(*args, **kw)

        monkeypatch.setattr(flow, name, spy)
    with torch.no_grad():
        trainer.loss(stage, trainer.data, (0,))
    monkeypatch.undo()
    return seen


@pytest.mark.parametrize("stage", ["base", "adapter"])
def test_residual_training_data_of_a_static_scene_is_zero(tmp_path, tiny_episodes, stage,
                                                          monkeypatch):  # fmt: skip
    """In a scene where nothing changes, the residual flow's data is exactly zero, for the
    flow-matching and the shortcut part of the batch alike; the plain flow's is not."""
    for cfg in (TINY, RESIDUAL):
        trainer = Trainer(tiny_episodes, tmp_path / str(cfg.residual), cfg, FAST)
        trainer.data.frames[:] = trainer.data.frames[0]  # one frame everywhere
        seen = flow_data_of_one_batch(trainer, stage, monkeypatch)
        assert set(seen) == {"flow_matching_batch", "shortcut_batch"}
        for name, data in seen.items():
            assert (data.abs().max() == 0) == cfg.residual, (cfg.residual, name)


def test_training_resumes_exactly_after_an_interruption(tmp_path, tiny_episodes):
    cfg = FAST.replace(checkpoint_every=5)
    whole = Trainer(tiny_episodes, tmp_path / "whole", TINY, cfg)
    whole.run_stage("autoencoder", steps=10)
    part = Trainer(tiny_episodes, tmp_path / "part", TINY, cfg)
    part.run_stage("autoencoder", steps=5)  # then "killed": a new process picks it up
    resumed = Trainer(tiny_episodes, tmp_path / "part", TINY, cfg)
    assert resumed.state["done"]["autoencoder"] == 5
    resumed.run_stage("autoencoder", steps=10)
    for (name, a), b in zip(
        whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=name)
    lines = (tmp_path / "part" / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines if "loss" in json.loads(x)] == [5, 10]
