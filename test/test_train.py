"""Training beyond the world model's own stages: the action prior, ablations started from a
trained model, and data-parallel training over two CPU processes (gloo)."""

import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from wm_ros.config import ModelConfig, PriorConfig, TrainConfig
from wm_ros.data import sim_episodes
from wm_ros.eval.prior import evaluate_prior
from wm_ros.model import CheckpointError, load_model
from wm_ros.paths import config_path
from wm_ros.planning import ActionPrior, gaussian_nll, load_prior
from wm_ros.planning.goal_pose import load_pose_estimator
from wm_ros.sim.scene import ARM_LABEL_START, PUCK_LABEL
from wm_ros.train import Trainer, loss_panel, model_config_from_yaml

TINY = ModelConfig(
    image_size=16, latent_channels=2, ae_width=8, horizon=3, context=2, memory=1,
    widths=(8, 16), emb_dim=16, prompt_features=2,
)  # fmt: skip
FAST = TrainConfig(
    batch_size=8, lr=3e-3, warmup_steps=5, checkpoint_every=1000, log_every=10, val_fraction=0
)


@pytest.fixture(scope="module")
def episodes():
    return sim_episodes([0, 1], steps=12, image_size=16)


# ---------------------------------------------------------------------------------- flow loss


def test_flow_loss_weighs_the_cells_that_hold_the_arm_or_the_puck(tmp_path, episodes):
    off = Trainer(episodes, tmp_path / "off", TINY, FAST)
    idx = off.data.window_indices(4, np.random.default_rng(0))
    assert off.flow_loss_weight(off.data, idx, (4, 4)) is None  # the default: uniform

    trainer = Trainer(episodes, tmp_path / "on", TINY, FAST.replace(flow_foreground_weight=5.0))
    data = trainer.data
    real = data.labels  # the simulator's segmentation: the arm is in every frame
    data.labels = np.zeros_like(real)
    h = TINY.horizon
    last_ctx, fut = idx[0, -h - 1], idx[0, -1]
    data.labels[last_ctx, 0, 0] = ARM_LABEL_START  # the arm in the last context frame, top left
    data.labels[fut, 15, 15] = PUCK_LABEL  # the puck in the last future frame, bottom right
    data.labels[idx[0, 0], 8, 0] = ARM_LABEL_START  # a memory frame: not weighted
    weight = trainer.flow_loss_weight(data, idx, (4, 4))
    assert weight.shape == (4, h, 1, 4, 4)
    w0 = weight[0, :, 0]
    assert torch.all(w0[:, 0, 0] == 6.0)  # the last context frame's cell, in every step
    assert w0[-1, 3, 3] == 6.0 and torch.all(w0[:-1, 3, 3] == 1.0)  # only its own step
    assert w0[:, 2, 0].eq(1.0).all()  # memory frames do not count
    # The puck's own weight comes on top, in the puck's cells only.
    trainer.cfg = FAST.replace(flow_foreground_weight=5.0, flow_puck_weight=3.0)
    w0 = trainer.flow_loss_weight(data, idx, (4, 4))[0, :, 0]
    assert w0[-1, 3, 3] == 9.0 and torch.all(w0[:-1, 3, 3] == 1.0)
    assert torch.all(w0[:, 0, 0] == 6.0)  # the arm's cell: no puck weight
    trainer.cfg = FAST.replace(flow_puck_weight=3.0)  # on its own
    w0 = trainer.flow_loss_weight(data, idx, (4, 4))[0, :, 0]
    assert w0[-1, 3, 3] == 4.0 and torch.all(w0[:, 0, 0] == 1.0)
    trainer.cfg = FAST.replace(flow_foreground_weight=5.0)
    # Only the adapter's loss is weighted: both trainers start from the same seeded weights.
    data.labels = off.data.labels = real

    def loss(t: Trainer, stage: str) -> torch.Tensor:
        gen = torch.Generator().manual_seed(0)
        return t.flow_loss(t.data, stage, np.random.default_rng(1), gen)

    assert torch.equal(loss(trainer, "base"), loss(off, "base"))
    weighted = loss(trainer, "adapter")
    assert weighted > loss(off, "adapter")
    weighted.backward()


def test_negative_flow_loss_weights_are_refused():
    with pytest.raises(ValueError, match="flow_foreground_weight"):
        TrainConfig(flow_foreground_weight=-1.0)
    with pytest.raises(ValueError, match="flow_puck_weight"):
        TrainConfig(flow_puck_weight=-1.0)


# ---------------------------------------------------------------------------------- prior


def test_prior_starts_at_the_current_pose_and_keeps_its_spread_in_bounds():
    cfg = PriorConfig.for_model(TINY, ("a", "b", "c", "d"), min_std=0.05, max_std=0.5)
    prior = ActionPrior(cfg)
    z = torch.randn(5, TINY.context, TINY.latent_channels, TINY.latent_size, TINY.latent_size)
    q = torch.randn(5, 4)
    mean, std = prior(z, q)
    assert mean.shape == std.shape == (5, TINY.horizon, 4)
    torch.testing.assert_close(mean, q[:, None].expand(-1, TINY.horizon, -1))
    with torch.no_grad():
        prior.head.bias.fill_(100.0)
        assert torch.allclose(prior(z, q)[1], torch.tensor(0.5))
        prior.head.bias.fill_(-100.0)
        assert torch.allclose(prior(z, q)[1], torch.tensor(0.05))
    with pytest.raises(ValueError, match="prior takes latents"):
        prior(z[:, :1], q)


def test_gaussian_nll_is_lowest_at_the_true_mean_and_spread():
    g = torch.Generator().manual_seed(0)
    target = 0.3 * torch.randn(20000, 1, generator=g)
    mean = torch.zeros_like(target)
    nll = {s: float(gaussian_nll(mean, torch.full_like(target, s), target)) for s in (0.1, 0.3, 1)}
    assert nll[0.3] < nll[0.1] and nll[0.3] < nll[1]
    assert float(gaussian_nll(mean + 0.5, torch.full_like(target, 0.3), target)) > nll[0.3]


def test_prior_stage_learns_the_actions_and_is_saved_beside_the_model(tmp_path, episodes):
    trainer = Trainer(episodes, tmp_path / "m", TINY, FAST.replace(checkpoint_every=40))
    trainer.run_stage("autoencoder", steps=20)
    with torch.no_grad():
        first = np.mean([float(trainer.loss("prior", trainer.data, (3, i))) for i in range(4)])
    trainer.run_stage("prior", steps=80)
    with torch.no_grad():
        last = np.mean([float(trainer.loss("prior", trainer.data, (3, i))) for i in range(4)])
    assert last < first - 0.5, (first, last)  # NLL per component, nats
    prior = load_prior(tmp_path / "m")
    assert prior.cfg.joint_names == tuple(episodes[0].joint_names)
    for (name, a), b in zip(
        trainer.prior.state_dict().items(), prior.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a.cpu(), b, msg=name)
    model = load_model(tmp_path / "m")  # the world model is still loadable beside it
    figures = evaluate_prior(prior, model, episodes, windows_per_episode=6)
    assert figures["summary"]["mae_rad_mean"] < figures["summary"]["hold_pose_mae_rad_mean"]
    assert len(figures["within_1_std"]) == TINY.horizon
    resumed = Trainer(episodes, tmp_path / "m", TINY, FAST)
    assert resumed.prior is not None and resumed.state["done"]["prior"] == 80


def test_decoder_stage_trains_the_decoder_alone_and_keeps_the_latent_space(tmp_path, episodes):
    trainer = Trainer(episodes, tmp_path / "m", TINY, FAST)
    with pytest.raises(ValueError, match="train it first"):
        trainer.run_stage("decoder", steps=2)
    trainer.run_stage("autoencoder", steps=10)
    trainer.run_stage("base", steps=2)
    ae = trainer.model.autoencoder
    before = {k: v.clone() for k, v in ae.state_dict().items()}
    base = {k: v.clone() for k, v in trainer.model.base.state_dict().items()}
    with torch.no_grad():
        first = np.mean([float(trainer.loss("decoder", trainer.data, (5, i))) for i in range(4)])
    trainer.run_stage("decoder", steps=40)
    with torch.no_grad():
        last = np.mean([float(trainer.loss("decoder", trainer.data, (5, i))) for i in range(4)])
    assert last < first, (first, last)
    after = ae.state_dict()
    for k, v in before.items():  # encoder and latent statistics as they were, decoder moved
        if k.startswith("decoder."):
            continue
        torch.testing.assert_close(after[k], v, rtol=0, atol=0, msg=k)
    assert any(not torch.equal(after[k], before[k]) for k in after if k.startswith("decoder."))
    for k, v in trainer.model.base.state_dict().items():
        torch.testing.assert_close(v, base[k], rtol=0, atol=0, msg=k)
    resumed = Trainer(episodes, tmp_path / "m", TINY, FAST)
    assert resumed.state["done"]["decoder"] == 40


def test_loss_plot_keeps_a_negative_log_likelihood_on_a_linear_axis():
    """A log axis drops losses <= 0: the prior's NLL panel showed one point before."""
    rows = [{"step": 25, "loss": 4.9}, {"step": 50, "loss": -0.75, "val_loss": -0.8}]
    prior = loss_panel("prior", rows)
    assert not prior.log_y and [len(s.points) for s in prior.series] == [2, 1]
    assert loss_panel("base", [{"step": 25, "loss": 0.3, "val_loss": 0.28}]).log_y


@pytest.mark.parametrize(
    "stage, load", [("prior", load_prior), ("pose", load_pose_estimator)], ids=["prior", "pose"]
)
def test_a_missing_or_mismatched_planning_part_is_named(tmp_path, episodes, stage, load):
    trainer = Trainer(episodes, tmp_path / "m", TINY, FAST)
    trainer.run_stage("autoencoder", steps=2)
    with pytest.raises(CheckpointError, match=f"no '{stage}' section"):
        load(tmp_path / "m")
    trainer.run_stage(stage, steps=2)
    path = tmp_path / "m" / f"{stage}.safetensors"
    state = load_file(str(path))
    state.pop(next(iter(state)))
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match="1 missing"):
        load(tmp_path / "m")


# ---------------------------------------------------------------------------------- ablations


def test_shipped_config_lists_the_ablations():
    path = config_path("models/sim_tabletop.yaml")
    full = model_config_from_yaml(path)
    assert model_config_from_yaml(path, "no_base").use_base is False
    assert model_config_from_yaml(path, "joints").conditioning == "joints"
    assert model_config_from_yaml(path, "no_mask").use_mask is False
    assert full.use_mask and full.adapter_from_base
    no_mask = model_config_from_yaml(path, "no_mask")
    assert no_mask.replace(use_mask=True, adapter_from_base=True) == full
    with pytest.raises(ValueError, match="no ablation 'nope'"):
        model_config_from_yaml(path, "nope")


@pytest.mark.parametrize(
    ("variant", "shares_base"),
    [
        (TINY.replace(use_mask=False), True),
        (TINY.replace(use_base=False), False),
        (TINY.replace(residual=True), False),  # its base must learn other data
    ],
)
def test_ablation_starts_from_the_trained_autoencoder_and_base(
    tmp_path, episodes, variant, shares_base
):
    src = Trainer(episodes, tmp_path / "full", TINY, FAST)
    src.run_stage("autoencoder", steps=3)
    src.run_stage("base", steps=3)
    abl = Trainer(episodes, tmp_path / "abl", variant, FAST, init_from=tmp_path / "full")
    assert abl.state["done"]["autoencoder"] == FAST.autoencoder_steps
    ae_src, ae = src.model.autoencoder.state_dict(), abl.model.autoencoder.state_dict()
    for k in ae_src:
        torch.testing.assert_close(ae[k], ae_src[k], msg=k)
    if shares_base:
        assert abl.state["done"]["base"] == FAST.base_steps
        w = "net.stem.weight"
        torch.testing.assert_close(abl.model.base.state_dict()[w], src.model.base.state_dict()[w])
    else:
        assert abl.state["done"]["base"] == 0
    abl.run_stage("adapter", steps=2)
    assert load_model(tmp_path / "abl").cfg == variant
    with pytest.raises(ValueError, match="does not fit"):
        Trainer(episodes, tmp_path / "x", TINY.replace(ae_width=16), FAST, init_from=src.out)


# ---------------------------------------------------------------------------------- DDP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, store_file: str, out: str, episodes) -> None:
    # A file rendezvous and the loopback interface: nothing listens beyond this machine.
    dist.init_process_group("gloo", init_method=f"file://{store_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        trainer = Trainer(episodes, out, TINY, FAST.replace(device="cpu"))
        assert (trainer.rank, trainer.world) == (rank, world)
        trainer.run_stage("autoencoder", steps=2)
        before = {k: v.clone() for k, v in trainer.model.base.state_dict().items()}
        trainer.run_stage("base", steps=4)
        after = trainer.model.base.state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in after)
        save_file({k: v.contiguous() for k, v in after.items()}, f"{out}/rank{rank}.safetensors")
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(180)
def test_two_process_gloo_training_keeps_the_replicas_identical(tmp_path, episodes, monkeypatch):
    """Each rank draws its own windows; without averaged gradients the replicas would drift."""
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    out = tmp_path / "ddp"
    out.mkdir()
    mp.spawn(
        _ddp_worker, args=(2, str(tmp_path / "store"), str(out), episodes), nprocs=2, join=True
    )
    r0, r1 = load_file(str(out / "rank0.safetensors")), load_file(str(out / "rank1.safetensors"))
    for k in r0:
        torch.testing.assert_close(r0[k], r1[k], msg=k)
    # Rank 0 alone wrote the checkpoint, and it is the replicas' state.
    saved = load_model(out).base.state_dict()
    for k in r0:
        torch.testing.assert_close(saved[k], r0[k], msg=k)
    # Different windows per rank: a single process's run ends elsewhere.
    single = Trainer(episodes, tmp_path / "single", TINY, FAST.replace(device="cpu"))
    single.run_stage("autoencoder", steps=2)
    single.run_stage("base", steps=4)
    s = single.model.base.state_dict()
    assert any(not torch.equal(s[k], r0[k]) for k in r0)


def test_train_cli_names_bad_data_in_one_line(tmp_path, caplog):
    from wm_ros.cli import main

    assert main(["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "m")]) == 2
    assert "does not exist" in caplog.text
