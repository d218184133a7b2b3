"""How a goal cost weighs the arm against the puck on push goals (robot-masked vs whole image).

For each push episode it scores three simulator states against the goal image with the planner's
own goal distance (wm_ros.planning.costs.latent_goal_cost, the model's autoencoder latents):
the start; the arm in the goal's pose with the puck left at its start; the puck at its goal with
the arm at its start pose. A cost that judges the push must prefer the third to the second.
Printed per cost: mean cost of each state, the share of the start's cost each removes, and on
how many goals the puck-correct state beats the arm-correct one.

    python benchmarks/push_cost_probe.py [--model models/sim_tabletop] [--episodes 10] [--json F]
    python benchmarks/push_cost_probe.py --puck-radius 0.07   # a bigger puck weighs more
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from wm_ros.config import PUCK_RADIUS_M, PUSH_GOAL_POSES

STATES = ("start", "arm_at_goal", "puck_at_goal")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/sim_tabletop")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="first episode seed")
    parser.add_argument("--mask-px", type=float, default=3.0, help="cost.robot_mask_px")
    parser.add_argument("--pyramid", type=int, default=3, help="cost.pyramid")
    parser.add_argument(
        "--push-goal-pose",
        choices=PUSH_GOAL_POSES,
        default=PUSH_GOAL_POSES[0],
        help="TaskConfig.push_goal_pose: the goal's pusher against the puck, or backed off",
    )
    parser.add_argument(
        "--puck-radius", type=float, default=PUCK_RADIUS_M, help="SimConfig.puck_radius_m"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    os.environ.setdefault("MUJOCO_GL", "egl")
    from wm_ros.config import PromptConfig, SimConfig, TaskConfig
    from wm_ros.eval.timing import machine_info
    from wm_ros.model import load_model
    from wm_ros.paths import ARM_URDF
    from wm_ros.planning.costs import latent_goal_cost
    from wm_ros.planning.planner import PromptDrawer, RobotMasker
    from wm_ros.planning.session import resolve_model_dir
    from wm_ros.prompts import PromptRenderer
    from wm_ros.sim import TabletopSim

    torch.set_grad_enabled(False)
    model = load_model(resolve_model_dir(args.model), "cpu")
    size = model.cfg.image_size
    task_cfg = TaskConfig(kind="push", push_goal_pose=args.push_goal_pose)
    sim_cfg = SimConfig(
        image_width=size, image_height=size, task=task_cfg, puck_radius_m=args.puck_radius
    )
    costs = {"whole image": [], f"robot-masked {args.mask_px:g} px, pyramid {args.pyramid}": []}
    with TabletopSim(sim_cfg) as sim:
        pcfg = PromptConfig(image_width=size, image_height=size, channels=1)
        drawer = PromptDrawer(
            PromptRenderer(str(ARM_URDF), sim.camera_model(), pcfg), sim.joint_names
        )
        masker = RobotMasker(drawer, args.mask_px, model.latent_shape()[1:])
        for seed in range(args.seed, args.seed + args.episodes):
            sim.reset(seed)
            task, start = sim.task, sim.get_state()
            goal = model.encode_frames(task.goal_image[None])[0]
            goal_cells = masker(torch.tensor(task.goal_joints, dtype=torch.float32)[None, None])
            frames, poses = [], []
            for state in STATES:
                sim.set_state(task.goal_state if state == "arm_at_goal" else start)
                if state == "arm_at_goal":
                    sim.set_puck(task.start_puck[:2])
                elif state == "puck_at_goal":
                    sim.set_puck(task.goal_puck[:2])
                frames.append(sim.render())
                poses.append(sim.joint_positions())
            sim.set_state(start)
            z = model.encode_frames(np.stack(frames))[:, None]  # (3, 1, c, h, w)
            cells = masker(torch.tensor(np.stack(poses), dtype=torch.float32)[:, None])
            whole, masked = costs.values()
            whole.append(latent_goal_cost(z, goal, 1.0, 0.0).tolist())
            masked.append(
                latent_goal_cost(
                    z, goal, 1.0, 0.0, masked=cells | goal_cells[0], pyramid=args.pyramid
                ).tolist()
            )
    result = {
        "model": args.model,
        "episodes": args.episodes,
        "seed": args.seed,
        "push_goal_pose": args.push_goal_pose,
        "puck_radius_m": args.puck_radius,
        "costs": {},
    }
    for name, rows in costs.items():
        c = np.array(rows)  # (episodes, 3)
        removed = 1 - c.mean(axis=0) / c[:, 0].mean()
        result["costs"][name] = {
            "mean": dict(zip(STATES, c.mean(axis=0).tolist(), strict=True)),
            "share_of_start_removed": dict(zip(STATES[1:], removed[1:].tolist(), strict=True)),
            "puck_beats_arm": int((c[:, 2] < c[:, 1]).sum()),  # goals
        }
        wins = int((c[:, 2] < c[:, 1]).sum())
        print(
            f"{name}: mean cost start {c[:, 0].mean():.3f}, arm at goal {c[:, 1].mean():.3f} "
            f"(removes {removed[1]:.0%}), puck at goal {c[:, 2].mean():.3f} (removes "
            f"{removed[2]:.0%}); the puck-correct state is cheaper on {wins}/{len(c)} goals"
        )
    result["machine"] = machine_info()
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
