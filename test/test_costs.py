"""The planning costs: the robot mask, the multi-scale goal distance and the object term
(wm_ros.planning.costs)."""

import pytest
import torch

from wm_ros.config import CostConfig
from wm_ros.planning.costs import (
    OBJECT_MISSING_FRACTION,
    latent_goal_cost,
    object_centroid,
    object_goal_distance,
    plan_cost,
    robot_cells,
)


def blob(x: int, size: int = 16) -> torch.Tensor:
    """(1, size, size) latent with a 2x2 blob at column x, row 6 (an object on the table)."""
    z = torch.zeros(1, size, size)
    z[0, 6:8, x : x + 2] = 1.0
    return z


def test_robot_cells_dilate_the_drawn_pixels_onto_the_latent_grid():
    prompts = torch.zeros(2, 3, 3, 64, 64)  # (N, H, C, S, S)
    prompts[1, 2, 0, 30, 10] = 0.5  # one drawn pixel of candidate 1, step 2
    cells = robot_cells(prompts, dilate_px=3, cells=(16, 16))
    assert cells.shape == (2, 3, 16, 16) and cells.dtype == torch.bool
    assert not cells[0].any() and not cells[1, :2].any()
    # Pixels 27..33 x 7..13 are within 3 px: latent rows 6..8, columns 1..3 (4 px per cell).
    assert cells[1, 2].nonzero().tolist() == [[r, c] for r in (6, 7, 8) for c in (1, 2, 3)]


def test_masked_cells_do_not_count_and_the_pyramid_sees_an_approaching_object():
    goal = blob(12)
    far, near = blob(0), blob(14)  # neither overlaps the goal's blob; near shares a 4x4 cell
    one = [float(latent_goal_cost(z[None, None], goal, 1.0, 0.0)) for z in (far, near)]
    assert one[0] == one[1]  # at one scale, any miss costs the same: no direction to go
    three = [float(latent_goal_cost(z[None, None], goal, 1.0, 0.0, pyramid=3)) for z in (far, near)]
    assert three[1] < three[0]  # pooled scales: nearer is cheaper
    # An arm over the start blob: its cells drop out, the rest (the goal's blob missing) counts.
    arm = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    arm[..., 5:9, 0:3] = True
    masked = float(latent_goal_cost(far[None, None], goal, 1.0, 0.0, masked=arm))
    assert masked == float((goal**2).sum() / (256 - 12))
    # At 2x2, a pooled cell with any masked cell drops out (rows 4..9, columns 0..3: 6 cells).
    two = float(latent_goal_cost(far[None, None], goal, 1.0, 0.0, masked=arm, pyramid=2))
    pooled_goal = torch.nn.functional.avg_pool2d(goal[None], 2)[0]
    assert abs(two - (masked + float((pooled_goal**2).sum() / (64 - 6))) / 2) < 1e-6


def test_plan_cost_passes_the_mask_and_pyramid_through():
    cfg = CostConfig(goal_final=1.0, smoothness=0.0, limit=0.0, pyramid=2)
    latents = torch.stack([blob(0), blob(12)])[:, None]  # (2, 1, 1, 16, 16)
    targets, q0 = torch.zeros(2, 1, 3), torch.zeros(3)
    everything = torch.ones(2, 1, 16, 16, dtype=torch.bool)
    cost = plan_cost(
        cfg, latents=latents, goal_latent=blob(12), targets=targets, q0=q0,
        clipped_by=torch.zeros(2), masked=everything,
    )  # fmt: skip
    assert cost.tolist() == [0.0, 0.0]  # nothing left to compare
    cost = plan_cost(
        cfg, latents=latents, goal_latent=blob(12), targets=targets, q0=q0,
        clipped_by=torch.zeros(2),
    )  # fmt: skip
    assert cost[0] > 0 and cost[1] == 0


def test_a_final_step_rollout_costs_the_same_and_goal_all_refuses_it():
    cfg = CostConfig(goal_final=1.0, smoothness=0.0, limit=0.0, robot_mask_px=1.0)
    steps = torch.stack([blob(0), blob(4), blob(10)])  # one candidate's 3 imagined steps
    targets, q0 = torch.zeros(1, 3, 2), torch.zeros(2)
    arm = torch.zeros(1, 3, 16, 16, dtype=torch.bool)
    arm[0, 2, 6:8, 10:12] = True  # the last step's blob is under the arm
    common = {"goal_latent": blob(12), "targets": targets, "q0": q0, "clipped_by": torch.zeros(1)}
    full = plan_cost(cfg, latents=steps[None], masked=arm, **common)
    last = plan_cost(cfg, latents=steps[None, -1:], masked=arm, **common)
    assert float(last) == float(full) > 0  # the mask of the last step went with it
    with pytest.raises(ValueError, match="goal_all needs all 3 steps"):
        plan_cost(cfg.replace(goal_all=1.0), latents=steps[None, -1:], **common)


def scene(row: int, col: int, size: int = 64) -> torch.Tensor:
    """(3, size, size) table-brown image with a white 7x7 object centred at (row, col) and a
    single stray white pixel in a corner."""
    image = torch.empty(3, size, size)
    image[:] = torch.tensor([0.5, 0.45, 0.4])[:, None, None]
    image[:, row - 3 : row + 4, col - 3 : col + 4] = 0.95
    image[:, 1, 1] = 0.95
    return image


def test_the_object_is_found_by_its_colour_and_its_distance_costs():
    cfg = CostConfig(object_goal=0.01)
    images = torch.stack([scene(20, 30), scene(20, 40), torch.full((3, 64, 64), 0.5)])
    centre, found = object_centroid(images, cfg)
    assert found.tolist() == [True, True, False]
    assert centre[:2].tolist() == [[20.0, 30.0], [20.0, 40.0]]  # the stray pixel ignored
    d2 = object_goal_distance(images, torch.tensor([20.0, 30.0]), cfg)
    missing = (OBJECT_MISSING_FRACTION * 64) ** 2
    assert d2.tolist() == pytest.approx([0.0, 100.0, missing])
    # Another colour: the white object is no longer it.
    red = object_centroid(images, CostConfig(object_rgb=(0.9, 0.1, 0.1)))[1]
    assert not red.any()
    targets, q0 = torch.zeros(3, 1, 2), torch.zeros(2)
    cost = plan_cost(
        cfg, latents=None, goal_latent=None, targets=targets, q0=q0,
        clipped_by=torch.zeros(3), object_d2=d2,
    )  # fmt: skip
    assert cost.tolist() == pytest.approx([0.0, 1.0, 0.01 * missing])
    off = plan_cost(
        cfg.replace(object_goal=0.0), latents=None, goal_latent=None, targets=targets, q0=q0,
        clipped_by=torch.zeros(3), object_d2=d2,
    )  # fmt: skip
    assert off.tolist() == [0.0, 0.0, 0.0]


def test_object_settings_are_checked():
    with pytest.raises(ValueError, match="object_rgb"):
        CostConfig(object_rgb=(1.2, 0.0, 0.0))
    with pytest.raises(ValueError, match="object_rgb"):
        CostConfig(object_rgb=(1.0, 0.0))
    with pytest.raises(ValueError, match="object_tolerance"):
        CostConfig(object_tolerance=0.0)
    with pytest.raises(ValueError, match="object_goal"):
        CostConfig(object_goal=-1.0)
    assert CostConfig.from_dict({"object_rgb": [0.1, 0.2, 0.3]}).object_rgb == (0.1, 0.2, 0.3)
