"""Skeleton prompts: projection, the batched rasteriser, overlays, alignment with the simulator."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from wm_ros.camera import CameraModel
from wm_ros.config import PromptConfig
from wm_ros.prompts import PromptRenderer, RasterStyle, SkeletonRasterizer
from wm_ros.prompts.raster import MIN_DEPTH_M

PLANAR = """
<robot name="planar3">
  <link name="base"/><link name="a"/><link name="b"/><link name="tool"/>
  <joint name="j1" type="revolute"><parent link="base"/><child link="a"/>
    <origin xyz="0 0 0.1"/><axis xyz="0 0 1"/>
    <limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
  <joint name="j2" type="revolute"><parent link="a"/><child link="b"/>
    <origin xyz="0.5 0 0"/><axis xyz="0 0 1"/>
    <limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
  <joint name="j3" type="revolute"><parent link="b"/><child link="tool"/>
    <origin xyz="0.4 0 0"/><axis xyz="0 0 1"/>
    <limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
</robot>
"""

GRIPPER = """
<robot name="gripper_arm">
  <link name="base"/><link name="arm"/><link name="hand"/><link name="left"/><link name="right"/>
  <joint name="yaw" type="revolute"><parent link="base"/><child link="arm"/>
    <origin xyz="0 0 0.1"/><axis xyz="0 0 1"/>
    <limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
  <joint name="reach" type="prismatic"><parent link="arm"/><child link="hand"/>
    <origin xyz="0.4 0 0"/><axis xyz="1 0 0"/>
    <limit lower="0" upper="0.3" effort="1" velocity="1"/></joint>
  <joint name="finger" type="prismatic"><parent link="hand"/><child link="left"/>
    <origin xyz="0.1 0.01 0"/><axis xyz="0 1 0"/>
    <limit lower="0" upper="0.08" effort="1" velocity="1"/></joint>
  <joint name="finger_mimic" type="prismatic"><parent link="hand"/><child link="right"/>
    <origin xyz="0.1 -0.01 0"/><axis xyz="0 1 0"/>
    <limit lower="-0.08" upper="0" effort="1" velocity="1"/>
    <mimic joint="finger" multiplier="-1"/></joint>
</robot>
"""


def top_down_camera(height=3.0, size=64, f=40.0):
    """Looks straight down at (0.45, 0, 0): image x = base x, image y = -base y."""
    k = np.array([[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1]])
    rotation = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])  # columns: optical axes
    return CameraModel(size, size, k, np.zeros(5), np.array([0.45, 0.0, height]), rotation)


# Depth of the planar arm (z = 0.1) under the 3 m camera is 2.9 m: full brightness.
BRIGHT = PromptConfig(tool_link="tool", depth_near_m=3.0, depth_far_m=4.0)


@pytest.fixture(scope="module")
def planar():
    return PromptRenderer(PLANAR, top_down_camera(), BRIGHT)


def random_joints(n, h, j, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, h, j, generator=g) * 2 - 1) * scale


# ------------------------------------------------------------------------- shapes, determinism


def test_render_shapes_range_and_dtype(planar):
    prompts = planar.render(random_joints(5, 4, 3))
    assert prompts.shape == (5, 4, 3, 64, 64) and prompts.dtype == torch.float32
    assert prompts.min() >= 0 and prompts.max() <= 1 and prompts.max() > 0.5
    single = planar.render(np.zeros(3))
    assert single.shape == (3, 64, 64)


def test_render_is_deterministic_and_batch_independent(planar):
    q = random_joints(6, 3, 3, seed=1)
    a = planar.render(q)
    b = PromptRenderer(PLANAR, top_down_camera(), BRIGHT).render(q)
    assert torch.equal(a, b)
    # One candidate alone is drawn exactly as inside the batch.
    assert torch.equal(planar.render(q[2:3]), a[2:3])


def test_out_buffer_is_reused(planar):
    q = random_joints(2, 3, 3, seed=2)
    out = torch.full((2, 3, 3, 64, 64), 7.0)
    got = planar.render(q, out=out)
    assert got.data_ptr() == out.data_ptr()
    assert torch.equal(out, planar.render(q))
    with pytest.raises(ValueError, match="out must be"):
        planar.render(q, out=torch.empty(2, 3, 3, 32, 32))


def test_grey_prompts_and_float64():
    cfg = BRIGHT.replace(channels=1)
    r = PromptRenderer(PLANAR, top_down_camera(), cfg, dtype=torch.float64)
    prompts = r.render(random_joints(2, 2, 3))
    assert prompts.shape == (2, 2, 1, 64, 64) and prompts.dtype == torch.float64
    rgb = PromptRenderer(PLANAR, top_down_camera(), BRIGHT).render(random_joints(2, 2, 3))
    # The grey prompt lights the same pixels as the colour one.
    assert torch.equal(prompts[:, :, 0] > 0, rgb.amax(dim=2) > 0)


# ------------------------------------------------------------------------- what is drawn


def test_link_colours_at_segment_midpoints(planar):
    q = torch.tensor([[0.4, -0.9, 0.6]])
    uv, _ = planar.project(q)
    image = planar.render(q)[0]  # (3, 64, 64)
    palette = np.array(BRIGHT.palette_rgb())
    for e, (i, j) in enumerate(planar.skeleton.edges):
        mid = ((uv[0, i] + uv[0, j]) / 2).round().long()
        if (uv[0, i] - uv[0, j]).norm() < 6:
            continue  # too short: the joint dots cover it
        pixel = image[:, mid[1], mid[0]].numpy()
        expected = palette[e % len(palette)]
        np.testing.assert_allclose(pixel / pixel.max(), expected / expected.max(), atol=0.03)
    tool = uv[0, planar.skeleton.tool_index].round().long()
    pixel = image[:, tool[1], tool[0]].numpy()
    np.testing.assert_allclose(pixel, BRIGHT.tool_rgb(), atol=0.01)


def test_keypoints_land_where_the_camera_puts_them(planar):
    # Straight arm along +x at height 0.1: the tool is 0.9 m from the base.
    uv, depth = planar.project(torch.zeros(3))
    f, c = 40.0, 31.5
    expected_x = [
        c + f * (x - 0.45) / z for x, z in ((0.0, 3.0), (0.0, 2.9), (0.5, 2.9), (0.9, 2.9))
    ]
    np.testing.assert_allclose(uv[:, 0].numpy(), expected_x, atol=1e-4)
    np.testing.assert_allclose(uv[:, 1].numpy(), c, atol=1e-4)
    np.testing.assert_allclose(depth.numpy(), [3.0, 2.9, 2.9, 2.9], atol=1e-5)


def make_rasterizer(
    line_width=1.5,
    joint_radius=1.5,
    tool_radius=2.0,
    size=64,
    edges=None,
    kinds=None,
    near=1.0,
    far=2.0,
    min_brightness=0.4,
):
    edges = np.array([[0, 1]] if edges is None else edges)
    kinds = kinds or ["joint", "tool"]
    is_tool = np.array([k == "tool" for k in kinds])
    style = RasterStyle(
        edges=edges,
        edge_colors=np.array(PromptConfig().palette_rgb())[np.arange(len(edges)) % 8],
        dot_colors=np.where(is_tool[:, None], (0.8, 0.2, 0.8), (1.0, 1.0, 1.0)),
        dot_radii=np.where(is_tool, tool_radius, joint_radius),
        dot_priority=np.where(is_tool, 2, 1),
        line_width=line_width,
        depth_near=near,
        depth_far=far,
        min_brightness=min_brightness,
    )
    return SkeletonRasterizer(style, size, size)


def test_anti_aliased_coverage_values():
    r = make_rasterizer(joint_radius=0.0, tool_radius=0.0)
    uv = torch.tensor([[[10.0, 20.3], [50.0, 20.3]]])
    rgba = r(uv, torch.ones(1, 2), alpha=True)[0]
    alpha = rgba[-1]
    # Coverage = clamp(width / 2 + 0.5 - distance, 0, 1): 0.95 at 0.3 px, 0.55 at 0.7 px.
    assert alpha[20, 30].item() == pytest.approx(round(0.95 * 255) / 255, abs=1e-6)
    assert alpha[21, 30].item() == pytest.approx(round(0.55 * 255) / 255, abs=1e-6)
    assert alpha[19, 30].item() == 0 and alpha[22, 30].item() == 0
    # Round caps: pixel (51, 20) is sqrt(1 + 0.3^2) px from the end point (50, 20.3).
    cap = 1.25 - math.sqrt(1.09)
    assert alpha[20, 51].item() == pytest.approx(round(cap * 255) / 255, abs=1e-6)
    frac = alpha[(alpha > 0) & (alpha < 1)]
    assert frac.numel() > 40  # fringes on both sides along the whole segment


def test_depth_cue_is_monotone():
    r = make_rasterizer(joint_radius=0.0, tool_radius=0.0, near=1.0, far=2.0, min_brightness=0.4)
    depths = torch.tensor([0.5, 1.0, 1.25, 1.5, 1.75, 2.0, 3.0])
    uv = torch.tensor([[10.0, 32.0], [50.0, 32.0]]).expand(len(depths), 2, 2)
    rgba = r(uv, depths[:, None].expand(-1, 2).contiguous(), alpha=True)
    centre = rgba[:, -1, 32, 30]
    expected = 1 - 0.6 * ((depths - 1.0) / 1.0).clamp(0, 1)
    torch.testing.assert_close(centre, (expected * 255).round() / 255)
    assert torch.all(centre[1:] <= centre[:-1]) and torch.all(centre[2:6] < centre[1:5])
    # A segment receding from the camera darkens along its length.
    slope = r(uv[:1], torch.tensor([[1.0, 2.0]]), alpha=True)[0, -1, 32]
    assert torch.all(slope[12:48].diff() <= 0) and slope[12] > slope[47] + 0.4


def test_dots_sit_on_top_of_segments():
    r = make_rasterizer(joint_radius=2.0, kinds=["joint", "joint", "tool"], edges=[[0, 1], [1, 2]])
    uv = torch.tensor([[[10.0, 10.0], [30.0, 30.0], [50.0, 10.0]]])
    image = r(uv, torch.ones(1, 3))[0]
    torch.testing.assert_close(image[:, 30, 30], torch.ones(3))  # white joint dot
    torch.testing.assert_close(image[:, 10, 50], torch.tensor([0.8, 0.2, 0.8]), atol=2e-3, rtol=0)


def test_hidden_dot_does_not_cover_a_visible_segment():
    # Keypoint 2 is behind the camera but projects onto the visible segment 0-1: its dot must
    # not black out the segment there (its priority only counts when it is drawn).
    r = make_rasterizer(kinds=["joint", "joint", "tool"], edges=[[0, 1]])
    uv = torch.tensor([[[10.0, 32.0], [50.0, 32.0], [30.0, 32.0]]])
    alpha = r(uv, torch.tensor([[1.0, 1.0, -1.0]]), alpha=True)[0, -1]
    assert alpha[32, 30].item() == 1.0


def test_hidden_points_are_not_drawn():
    r = make_rasterizer()
    uv = torch.tensor([[[10.0, 10.0], [50.0, 40.0]]]).expand(3, 2, 2).contiguous()
    depth = torch.tensor([[1.0, 1.0], [1.0, -0.5], [1.0, MIN_DEPTH_M / 2]])
    images = r(uv, depth)
    assert images[0].sum() > 0
    # Behind the camera: neither the segment nor that dot; the other dot stays.
    for b in (1, 2):
        assert images[b, :, 40, 50].sum() == 0 and images[b, :, 25, 30].sum() == 0
        assert images[b, :, 10, 10].sum() > 0
    # Far off-image points are clipped, not an error.
    far = r(torch.tensor([[[-500.0, 32.0], [500.0, 33.0]]]), torch.ones(1, 2))
    assert far[0, :, 32, :].amax(0).min() > 0


def dense_reference_keys(r, uv, depth):
    """Brute force over every pixel: the key semantics the module doc describes."""
    s, h, w = r.style, r.height, r.width
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    nc = r.num_colors
    keys = np.zeros((uv.shape[0], h * w), dtype=np.int64)

    def bright255(d, vis):
        frac = np.clip((d - s.depth_near) / (s.depth_far - s.depth_near), 0, 1)
        return 255.0 * vis * (1 - (1 - s.min_brightness) * frac)

    for b in range(uv.shape[0]):
        best = np.zeros(h * w, dtype=np.int64)
        vis = depth[b] > MIN_DEPTH_M
        for e, (i, j) in enumerate(s.edges):
            a, d = uv[b, i], uv[b, j] - uv[b, i]
            l2 = d @ d
            t = np.zeros_like(xs) if l2 <= 1e-12 else ((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / l2
            t = np.clip(t, 0, 1)
            dist = np.hypot(xs - a[0] - t * d[0], ys - a[1] - t * d[1])
            cov = np.clip(r.seg_reach - dist, 0, 1)
            # Brightness uses the depth at the pixel's column (x for x-major segments, else
            # row y), on the segment: the parameter of that column, clamped.
            xmajor = abs(d[0]) >= abs(d[1])
            major, am, dm = (xs, a[0], d[0]) if xmajor else (ys, a[1], d[1])
            t_col = np.zeros_like(xs) if abs(dm) <= 1e-12 else np.clip((major - am) / dm, 0, 1)
            depth_t = depth[b, i] + t_col * (depth[b, j] - depth[b, i])
            level = np.round(cov * bright255(depth_t, float(vis[i] and vis[j])))
            best = np.maximum(best, (level * nc + e).astype(np.int64).ravel())
        for k in range(len(s.dot_radii)):
            if s.dot_radii[k] <= 0:
                continue
            dist = np.hypot(xs - uv[b, k, 0], ys - uv[b, k, 1])
            cov = np.clip(s.dot_radii[k] + 0.5 - dist, 0, 1)
            prio = np.where(cov >= 0.5, s.dot_priority[k], 0)
            level = np.round(cov * bright255(depth[b, k], float(vis[k])))
            key = ((prio * 256 + level) * nc + r.num_edges + k).astype(np.int64)
            best = np.maximum(best, key.ravel())
        keys[b] = best
    return keys


# 200 x 200: pixel indices no longer fit int16, so candidates take the int32 path of `draw`.
@pytest.mark.parametrize("line_width,size", [(1.0, 48), (1.5, 48), (3.0, 48), (1.5, 200)])
def test_sparse_rasteriser_matches_dense_reference(line_width, size):
    kinds = ["joint", "joint", "joint", "joint", "tool"]
    edges = [[0, 1], [1, 2], [2, 3], [3, 4], [0, 2]]
    r = make_rasterizer(line_width=line_width, kinds=kinds, edges=edges, size=size)
    rng = np.random.default_rng(5)
    uv = rng.uniform(-8, size + 8, size=(40, 5, 2))
    uv[0, 1] = uv[0, 0]  # a degenerate segment
    uv[1, :, 1] = 20.0  # horizontal segments
    uv[2, :, 0] = 30.0  # vertical segments
    uv[3, :, 1] = uv[3, :, 0]  # 45 degrees exactly
    depth = rng.uniform(0.5, 2.5, size=(40, 5))
    depth[4, 2] = -1.0
    got = r.key_map(torch.tensor(uv), torch.tensor(depth)).numpy()
    ref = dense_reference_keys(r, uv, depth)
    nc = r.num_colors
    level_got, level_ref = (got // nc) % 256, (ref // nc) % 256
    # What is drawn: (priority, level, element) where the level is not 0 (level 0 is black
    # whatever element it names). Rounding of exact .5 levels can differ between the two float
    # paths: allow rare one-level differences (and the element that then wins), nothing else.
    drawn_got = np.where(level_got > 0, got, 0)
    drawn_ref = np.where(level_ref > 0, ref, 0)
    differ = drawn_got != drawn_ref
    assert (level_ref > 0).mean() > 0.05 * 48 / size  # lines cover less of a larger image
    assert differ.mean() < 1e-3
    assert np.all(np.abs(level_got - level_ref)[differ] <= 1)


def test_sparse_decode_matches_dense_table_lookup():
    # decode writes only the candidate pixels of `draw`; every other pixel must be exactly what
    # a dense look-up of the whole key map gives (black), with and without alpha.
    r = make_rasterizer(kinds=["joint", "joint", "tool"], edges=[[0, 1], [1, 2]], size=40)
    rng = np.random.default_rng(9)
    uv = torch.tensor(rng.uniform(-5, 45, size=(12, 3, 2)), dtype=torch.float32)
    depth = torch.tensor(rng.uniform(0.5, 2.5, size=(12, 3)), dtype=torch.float32)
    depth[3] = -1.0  # nothing drawn in image 3
    for alpha in (False, True):
        got = r(uv, depth, out=torch.full((12, 3 + alpha, 40, 40), 7.0), alpha=alpha)
        table = torch.as_tensor(r._table_np, dtype=torch.float32)[: 3 + alpha]  # (C', T)
        keys = r.key_map(uv, depth).long()  # (B, h*w)
        dense = table[:, keys].permute(1, 0, 2).reshape(got.shape)
        assert torch.equal(got, dense)
        assert got[3].abs().sum() == 0 and (got > 0).float().mean() > 0.01
    # A batch with nothing to draw at all decodes to black.
    assert r(uv, torch.full((12, 3), -1.0)).abs().sum() == 0


def test_gripper_opening_is_drawn():
    camera = top_down_camera(height=2.0, f=60.0)
    r = PromptRenderer(GRIPPER, camera, PromptConfig(tool_link="hand"))
    assert r.skeleton.gripper and r.joint_names == ("yaw", "reach", "finger")
    closed, opened = torch.tensor([0.0, 0.1, 0.0]), torch.tensor([0.0, 0.1, 0.08])
    uv_c, _ = r.project(closed)
    uv_o, _ = r.project(opened)
    left, right = (r.skeleton.keypoint_names.index(n) for n in ("left", "right"))
    gap_closed = (uv_c[left] - uv_c[right]).norm().item()
    gap_open = (uv_o[left] - uv_o[right]).norm().item()
    assert gap_open > gap_closed + 4  # 0.16 m more at 60 px/1.9 m
    img_c, img_o = r.render(closed), r.render(opened)
    bar = r.skeleton.edge_names.index("<gripper>")
    colour = torch.tensor(PromptConfig().palette_rgb()[bar])
    mid = ((uv_o[left] + uv_o[right]) / 2).round().long()
    # Halfway between the open fingers (clear of their dots) the bar's colour appears.
    pixel = img_o[:, mid[1], mid[0]]
    torch.testing.assert_close(pixel / pixel.max(), colour / colour.max(), atol=0.05, rtol=0)
    assert (img_o.amax(0) > 0).sum() > (img_c.amax(0) > 0).sum()


# ------------------------------------------------------------------------- overlays


def test_overlay_on_camera_image(planar):
    rng = np.random.default_rng(6)
    image = rng.integers(0, 255, size=(128, 128, 3), dtype=np.uint8)
    q = np.array([0.3, -0.5, 0.4])
    out = planar.overlay(image, q)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(planar.overlay(image, q, opacity=0.0), image)
    uv, _ = planar.project(q)
    uv = uv.numpy() * 2  # the image is twice the camera's resolution
    tool = np.round(uv[planar.skeleton.tool_index]).astype(int)
    np.testing.assert_allclose(out[tool[1], tool[0]], np.array(BRIGHT.tool_rgb()) * 255, atol=2)
    changed = np.any(out != image, axis=2)
    assert 50 < changed.sum() < 0.2 * changed.size
    assert not changed[:10, :10].any()  # far from the arm
    with pytest.raises(ValueError, match="uint8"):
        planar.overlay(image.astype(np.float32), q)


# ------------------------------------------------------------------------- bad input


def test_bad_joints_raise(planar):
    with pytest.raises(ValueError, match="finite"):
        planar.render(torch.tensor([[0.1, float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="3 joints"):
        planar.render(torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match=r"lacks joint\(s\) \['j2'\]"):
        planar.render_state(["j1", "j3", "extra"], [0.0, 0.0, 0.0])
    # Extra joints in a state are ignored; order is by name.
    by_name = planar.render_state(["extra", "j3", "j2", "j1"], [9.0, 0.3, 0.2, 0.1])
    assert torch.equal(by_name, planar.render(np.array([0.1, 0.2, 0.3])))


def test_bad_robot_or_camera_raise(tmp_path):
    camera = top_down_camera()
    with pytest.raises(ValueError, match="URDF file not found"):
        PromptRenderer(tmp_path / "missing.urdf", camera, BRIGHT)
    with pytest.raises(ValueError, match="malformed URDF XML"):
        PromptRenderer("<robot><link name='a'></robot>", camera, BRIGHT)
    with pytest.raises(ValueError, match="not reachable"):
        PromptRenderer(PLANAR, camera, BRIGHT.replace(base_link="b", tool_link="a"))
    with pytest.raises(ValueError, match="no link 'gripper'"):
        PromptRenderer(PLANAR, camera, BRIGHT.replace(tool_link="gripper"))
    with pytest.raises(ValueError, match="intrinsics"):
        CameraModel(64, 64, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="CameraModel"):
        PromptRenderer(PLANAR, np.eye(3), BRIGHT)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"channels": 2}, "channels"),
        ({"line_width_px": 0.0}, "line_width_px"),
        ({"depth_near_m": 2.0, "depth_far_m": 1.0}, "depth_near_m"),
        ({"depth_min_brightness": 0.0}, "depth_min_brightness"),
        ({"palette": ("#12345",)}, "palette"),
        ({"tool_color": "red"}, "tool_color"),
        ({"tool_offset": (0.0, 0.0)}, "tool_offset"),
        ({"image_width": 2}, "prompt size"),
    ],
)
def test_prompt_config_validation(changes, match):
    with pytest.raises(ValueError, match=match):
        PromptConfig(**changes)


def test_prompt_config_from_dict_round_trip():
    cfg = PromptConfig.from_dict({"palette": ["#ff0000", "#00ff00"], "tool_offset": [0, 0, 1]})
    assert cfg.palette == ("#ff0000", "#00ff00") and cfg.tool_offset == (0.0, 0.0, 1.0)
    assert PromptConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown setting"):
        PromptConfig.from_dict({"line_width": 2})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    q = random_joints(16, 4, 3, seed=7)
    cpu = PromptRenderer(PLANAR, top_down_camera(), BRIGHT).render(q)
    gpu = PromptRenderer(PLANAR, top_down_camera(), BRIGHT, device="cuda").render(q)
    assert (gpu.cpu() - cpu).abs().max() <= 1.5 / 255


# ------------------------------------------------------------------------- the simulator


@pytest.fixture(scope="module")
def sim():
    from wm_ros.sim import TabletopSim

    s = TabletopSim()
    yield s
    s.close()


def test_alignment_with_the_simulator(sim):
    from wm_ros.prompts import measure_alignment

    figures = measure_alignment(sim, configs=40, seed=11)
    err = figures["keypoint_error_px"]
    assert err["count"] >= 40
    assert err["max"] <= 1.0 and err["mean"] <= 0.5
    assert figures["iou"]["mean"] > 0.4


def test_write_overlay_frames(sim, tmp_path):
    from wm_ros.prompts import write_overlay_frames

    state = sim.get_state()
    paths = write_overlay_frames(sim, 2, tmp_path / "frames", seed=3)
    assert [p.name for p in paths] == ["overlay_000.png", "overlay_001.png"]
    with Image.open(paths[0]) as im:
        assert im.size == (3 * 4 * sim.cfg.image_width, 4 * sim.cfg.image_height)
        sheet = np.asarray(im.convert("RGB"))
    width = 4 * sim.cfg.image_width
    render, overlay, prompt = sheet[:, :width], sheet[:, width : 2 * width], sheet[:, 2 * width :]
    assert np.any(render != overlay) and prompt.max() > 100
    assert not np.array_equal(state, sim.get_state()) or True  # the sim's episode was reset
    with pytest.raises(ValueError, match="k must be"):
        write_overlay_frames(sim, 0, tmp_path)


def test_sim_renderer_names_match_the_sim(sim):
    from wm_ros.prompts import sim_prompt_renderer

    r = sim_prompt_renderer(sim)
    assert set(r.joint_names) == set(sim.joint_names)
    assert r.skeleton.keypoint_names == ("base_link", "link1", "link2", "link3", "link4", "tool")
    q = sim.joint_positions()[r.joint_order(sim.joint_names)]
    uv, depth = r.project(q)
    assert torch.all(depth > 0.5) and math.isfinite(float(uv.sum()))
