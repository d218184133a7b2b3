"""The model card is written from recorded files only: training log, config, eval JSON."""

import json

from wm_ros.config import ModelConfig, TrainConfig
from wm_ros.data import sim_episodes
from wm_ros.eval.model_card import _stage_times, render_card
from wm_ros.eval.pose import pose_errors
from wm_ros.eval.predict import evaluate_prediction
from wm_ros.train import Trainer

TINY = ModelConfig(
    image_size=16, latent_channels=2, ae_width=8, horizon=3, context=2, memory=1,
    widths=(8, 16), emb_dim=16, prompt_features=2,
)  # fmt: skip


def test_card_reports_the_recorded_figures_and_the_targets(tmp_path):
    episodes = sim_episodes([0, 1], steps=12, image_size=16)
    cfg = TrainConfig(batch_size=4, log_every=1, checkpoint_every=2, val_fraction=0.5)
    trainer = Trainer(episodes, tmp_path / "m", TINY, cfg)
    for stage in ("autoencoder", "base", "adapter"):
        trainer.run_stage(stage, steps=2)
    evals = tmp_path / "eval"
    evals.mkdir()
    result = evaluate_prediction(trainer.model.eval(), episodes, progress=False)
    (evals / "full.json").write_text(json.dumps(result))
    card = render_card(tmp_path / "m", tmp_path / "m", evals, None)
    psnr = result["metrics"]["summary"]["psnr_at_H"]
    assert f"{psnr:.2f}" in card
    assert "| autoencoder | 2 |" in card and "1 training episodes" in card
    assert card.count("met") >= 3  # each target judged, met or not
    assert "## Ablations" not in card  # none recorded, none claimed
    assert "Simulator:" not in card  # no data directory given
    lo, hi = result["metrics"]["summary_ci95"]["arm_iou_mean_1_to_H"]
    assert f"arm IoU {lo:.3f}-{hi:.3f}" in card and result["data_fingerprint"] in card
    data = tmp_path / "data"
    data.mkdir()
    sim = {"puck_radius_m": 0.07, "image_width": 64, "image_height": 64, "control_dt": 0.1}
    (data / "collect.json").write_text(json.dumps({"sim": {**sim, "task": {"kind": "push"}}}))
    card = render_card(tmp_path / "m", tmp_path / "m", evals, None, data_dir=data)
    assert "Simulator: puck radius 0.070 m, 64x64 px, control dt 0.1 s, push task" in card
    assert "Deterministic prediction" not in card and "noise scale 1.0" in card
    # Deterministic predictions recorded beside the sampled ones: a section of their own.
    det = evaluate_prediction(trainer.model.eval(), episodes, progress=False, noise_scale=0.0)
    assert det["noise_scale"] == 0.0
    (evals / "full_noise0.json").write_text(json.dumps(det))
    card = render_card(tmp_path / "m", tmp_path / "m", evals, None)
    assert "## Deterministic prediction" in card
    assert f"{det['metrics']['summary']['arm_iou_mean_1_to_H']:.3f}" in card
    # The goal-pose estimator: its section appears once `wm-ros eval pose` has recorded figures.
    assert "## Goal-pose estimator" not in card
    trainer.run_stage("pose", steps=2)
    frames, joints = episodes[0].frames, episodes[0].joints
    figures = pose_errors(trainer.pose.eval(), frames, joints, trainer.renderer())
    pose = {"seeds": [0, 4], "goal_images": figures}
    (evals / "pose.json").write_text(json.dumps(pose))
    card = render_card(tmp_path / "m", tmp_path / "m", evals, None)
    assert "## Goal-pose estimator" in card and "| pose | 2 |" in card
    assert f"{pose['goal_images']['max_joint_error_rad']['p50']:.3f}" in card
    assert "Trained on 1 episodes" in card  # the pose stage's own data record
    assert f"{figures['keypoint_error_px']['mean_per_keypoint'][-1]:.2f} |" in card


def test_stage_times_add_up_resumed_runs(tmp_path):
    log = tmp_path / "train_log.jsonl"
    rows = [(1, 10.0), (2, 20.0), (3, 5.0), (4, 15.0)]  # a resume after step 2
    log.write_text(
        "\n".join(
            json.dumps({"stage": "base", "step": s, "loss": 1.0, "elapsed_s": e}) for s, e in rows
        )
    )
    t = _stage_times(log)["base"]
    assert t["wall_s"] == 35.0 and t["runs"] == 2 and t["steps"] == 4
