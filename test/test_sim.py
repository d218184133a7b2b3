"""The MuJoCo tabletop simulator: URDF, API, determinism, control, camera model, contacts."""

import threading
import xml.etree.ElementTree as ET
from concurrent.futures import Future
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from wm_ros.camera import project_points
from wm_ros.config import PUCK_RADIUS_M, SimConfig
from wm_ros.sim import (
    ARM_LABELS,
    ARM_LINKS,
    BACKGROUND_LABEL,
    DEFAULT_URDF,
    PUCK_LABEL,
    TabletopSim,
)
from wm_ros.sim.scene import read_urdf_joints


@pytest.fixture(scope="module")
def sim():
    with TabletopSim() as s:
        yield s


def pose(sim: TabletopSim, q, puck_xy) -> None:
    """Put the arm at rest at joint positions q and the puck at rest at puck_xy."""
    sim.set_joint_positions(np.asarray(q, dtype=float))
    sim.set_puck(np.asarray(puck_xy, dtype=float))


# ---------------------------------------------------------------------------------- URDF


def test_urdf_is_a_plain_scara_arm():
    root = ET.parse(DEFAULT_URDF).getroot()
    assert root.tag == "robot"
    assert root.find("mujoco") is None  # no simulator-specific tags
    links = {link.get("name"): link for link in root.iter("link")}
    assert tuple(links) == ARM_LINKS
    for name, link in links.items():
        assert link.find("inertial/mass") is not None, name
        assert link.find("visual") is not None, name
    # Only the pusher collides.
    assert [n for n, link in links.items() if link.find("collision") is not None] == ["tool"]
    revolute = [j for j in root.iter("joint") if j.get("type") == "revolute"]
    assert len(revolute) == 4
    for joint in revolute:
        assert joint.find("axis").get("xyz").split() == ["0", "0", "1"]
    fixed = [j for j in root.iter("joint") if j.get("type") == "fixed"]
    assert [j.find("child").get("link") for j in fixed] == ["tool"]
    limits = read_urdf_joints(DEFAULT_URDF.read_text())
    for info in limits.values():
        assert info.lower < 0 < info.upper and info.velocity > 0 and info.effort > 0
    # Distinct link colours.
    colours = {m.get("name"): m.find("color").get("rgba") for m in root.iter("material")
               if m.find("color") is not None}  # fmt: skip
    used = [link.find("visual/material").get("name") for link in links.values()]
    assert len({colours[m] for m in used}) == len(used)


def test_model_keeps_every_link_as_a_body(sim):
    assert sim.link_names == ARM_LINKS
    assert tuple(sim.link_labels.values()) == ARM_LABELS
    assert sim.joint_names == ("joint1", "joint2", "joint3", "joint4")
    assert sim.joint_limits.shape == (4, 2)
    assert np.all(sim.joint_limits[:, 0] < sim.joint_limits[:, 1])
    assert sim.velocity_limits.shape == (4,) and np.all(sim.velocity_limits > 0)
    # The tool point is the pusher tip, near the table, about 0.65 m out when stretched.
    sim.reset(0)
    pose(sim, np.zeros(4), (0.3, 0.3))
    np.testing.assert_allclose(sim.tool_position(), [0.65, 0.0, 0.005], atol=1e-9)
    positions = sim.body_positions()
    assert set(positions) == {*ARM_LINKS, "puck"}


def test_only_the_pusher_and_the_table_touch_the_puck(sim):
    m = sim.model
    pairs = set()
    for a in range(m.ngeom):
        for b in range(a + 1, m.ngeom):
            if (m.geom_contype[a] & m.geom_conaffinity[b]) or (
                m.geom_contype[b] & m.geom_conaffinity[a]
            ):
                pairs.add(tuple(sorted((m.geom(a).name, m.geom(b).name))))
    assert pairs == {("puck", "table"), ("puck", "tool_rod_collision")}


def test_links_pass_over_the_puck(sim):
    sim.reset(0)
    # The arm swings with link2 passing right over the puck; only the rod could touch it.
    pose(sim, np.array([-0.6, 0.0, 1.5, 0.0]), (0.35, 0.0))
    start = sim.puck_position()
    for _ in range(10):
        sim.step(np.array([0.6, 0.0, 1.5, 0.0]))
    assert np.abs(sim.joint_positions()[0] - 0.6) < 0.05
    np.testing.assert_allclose(sim.puck_position(), start, atol=1e-4)


# ---------------------------------------------------------------------------------- API


def test_render_and_segmentation(sim):
    sim.reset(1)
    image = sim.render()
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    labels = sim.segmentation()
    assert labels.shape == (64, 64) and labels.dtype == np.int32
    assert set(np.unique(labels)) <= {BACKGROUND_LABEL, PUCK_LABEL, *ARM_LABELS}
    assert sim.puck_mask(labels).sum() > 5
    assert sim.arm_mask(labels).sum() > 30
    np.testing.assert_array_equal(sim.arm_mask(), sim.arm_mask(labels))
    # Pixels of each label have that link's colour (the arm is not drawn in table colours).
    red = image[labels == sim.link_labels["link1"]].astype(int)
    assert np.all(red[:, 0] > red[:, 1] + 40)


def test_puck_radius_is_configurable_and_checked(sim):
    sim.reset(1)
    assert sim.puck_radius == PUCK_RADIUS_M == 0.07
    big = sim.puck_mask().sum()
    with TabletopSim(SimConfig(puck_radius_m=0.04)) as small:
        small.reset(1)
        assert small.puck_radius == 0.04
        # A disc 1.75x as wide covers about 3x the pixels (what the image cost sees of it).
        assert big > 2.5 * small.puck_mask().sum()
    for bad in (0.0, 0.2):
        with pytest.raises(ValueError, match="puck_radius_m"):
            SimConfig(puck_radius_m=bad)


def test_same_seed_same_episode_and_different_seed_different_episode(sim):
    other = TabletopSim(SimConfig(seed=7))
    try:
        sim.reset(7)
        for s in (sim, other):
            for k in range(3):
                s.step(s.joint_positions() + 0.1 * (k + 1))
        np.testing.assert_array_equal(sim.get_state(), other.get_state())
        np.testing.assert_array_equal(sim.render(), other.render())
        np.testing.assert_array_equal(sim.task.goal_image, other.task.goal_image)
        np.testing.assert_array_equal(sim.task.goal_state, other.task.goal_state)
        other.reset(8)
        assert not np.array_equal(sim.task.goal_state, other.task.goal_state)
        assert not np.array_equal(sim.puck_position(), other.puck_position())
    finally:
        other.close()


def test_reset_without_seed_takes_the_next_one(sim):
    sim.reset(41)
    sim.reset()
    assert sim.episode_seed == 42
    assert sim.time == 0.0


def test_step_brings_the_joints_to_the_target_within_velocity_limits(sim):
    sim.reset(2)
    start = sim.joint_positions()
    target = np.clip(start + np.array([0.4, -0.4, 0.4, -0.4]), *(0.9 * sim.joint_limits.T))
    peak = np.zeros(4)
    for _ in range(4):
        for _ in range(10):
            sim.step(target, substeps=5)
            peak = np.maximum(peak, np.abs(sim.joint_velocities()))
    np.testing.assert_allclose(sim.joint_positions(), target, atol=0.01)
    assert np.all(peak <= 1.1 * sim.velocity_limits)
    assert sim.time == pytest.approx(0.4)


def test_step_clips_targets_and_rejects_bad_ones(sim):
    sim.reset(3)
    sim.step(np.array([10.0, -10.0, 0.0, 0.0]), substeps=0)
    np.testing.assert_array_equal(
        sim.target()[:2], [sim.joint_limits[0, 1], sim.joint_limits[1, 0]]
    )
    with pytest.raises(ValueError, match="shape"):
        sim.step(np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        sim.step(np.array([0.0, np.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match="substeps"):
        sim.step(None, substeps=-1)


def test_state_round_trip(sim):
    sim.reset(4)
    state = sim.get_state()
    image = sim.render()
    sim.step(sim.joint_positions() + 0.3)
    sim.step()
    assert not np.array_equal(sim.get_state(), state)
    sim.set_state(state)
    np.testing.assert_array_equal(sim.get_state(), state)
    np.testing.assert_array_equal(sim.render(), image)
    with pytest.raises(ValueError, match="state must have shape"):
        sim.set_state(state[:-1])


def test_puck_slides_and_stops(sim):
    sim.reset(5)
    pose(sim, sim.joint_positions(), (0.4, 0.15))
    sim.data.qvel[sim.model.joint("puck_free").dofadr[0]] = 0.3  # m/s along +x
    start = sim.puck_position()
    for _ in range(5):
        sim.step()
    moved = sim.puck_position() - start
    assert 0.005 < moved[0] < 0.03  # slid a little...
    assert np.linalg.norm(sim.puck_velocity()) < 1e-3  # ...and stopped
    assert abs(moved[2]) < 1e-3  # flat on the table


def test_shift_puck_moves_it_and_keeps_its_motion(sim):
    sim.reset(5)
    pose(sim, sim.joint_positions(), (0.4, 0.15))
    sim.data.qvel[sim.model.joint("puck_free").dofadr[0]] = 0.3  # sliding along +x
    start, velocity = sim.puck_position(), sim.puck_velocity()
    sim.shift_puck(np.array([0.02, -0.01]))
    np.testing.assert_allclose(sim.puck_position() - start, [0.02, -0.01, 0.0], atol=1e-12)
    np.testing.assert_array_equal(sim.puck_velocity(), velocity)


def test_render_from_other_threads_and_close_from_any():
    s = TabletopSim()
    expected = s.render()
    result = {}

    def work():
        result["image"] = s.render()
        result["labels"] = s.segmentation()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()  # the worker is gone; the renderer is not tied to it
    np.testing.assert_array_equal(result["image"], expected)
    np.testing.assert_array_equal(result["labels"], s.segmentation())
    closer = threading.Thread(target=s.close)
    closer.start()
    closer.join()
    s.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        s.render()
    s.step()  # physics still works


def test_the_finalizer_of_an_unclosed_simulator_never_waits_for_its_render_thread():
    """Under the cyclic collector a leaked simulator's render-thread executor can be collected
    with it and its thread gone: a job submitted then never runs. Waiting for one in __del__
    once hung a test module's setup for 300 s; the finalizer must hand the renderer over and
    return."""
    s = TabletopSim()
    s.render()
    real_thread = s._render_thread
    never_done = Future()  # what a submit to an executor without a thread amounts to
    s._render_thread = SimpleNamespace(submit=lambda fn: never_done, shutdown=lambda wait: None)
    finalizer = threading.Thread(target=s.__del__, daemon=True)
    finalizer.start()
    finalizer.join(20)
    assert not finalizer.is_alive(), "the finalizer waited for a render thread that is gone"
    assert s._closed and s._renderer is None
    real_thread.shutdown(wait=True)


# ---------------------------------------------------------------------------------- camera


def test_camera_model_intrinsics_and_pose(sim):
    cam = sim.camera_model()
    cfg = sim.cfg
    assert (cam.width, cam.height) == (cfg.image_width, cfg.image_height)
    assert cam.k[0, 2] == (cfg.image_width - 1) / 2 and cam.k[1, 2] == (cfg.image_height - 1) / 2
    np.testing.assert_allclose(cam.translation, cfg.camera_position)
    # The optical axis (z) points at the look-at point; image "down" (y) points down-ish.
    forward = np.subtract(cfg.camera_lookat, cfg.camera_position)
    np.testing.assert_allclose(cam.rotation[:, 2], forward / np.linalg.norm(forward), atol=1e-9)
    assert cam.rotation[2, 1] < 0
    uv, depth = project_points(torch.tensor(cfg.camera_lookat, dtype=torch.float64), cam)
    np.testing.assert_allclose(uv.numpy(), [cam.k[0, 2], cam.k[1, 2]], atol=1e-9)
    assert float(depth) > 0


def centroid_errors(sim: TabletopSim, geoms: list[str]) -> dict[str, float]:
    """Pixel distance between each geom's projected centre and the centroid of its pixels."""
    cam = sim.camera_model()
    ids = sim.geom_ids()
    errors = {}
    for name in geoms:
        geom = sim.model.geom(name)
        rows, cols = np.nonzero(ids == geom.id)
        assert rows.size >= 5, f"{name} is hardly visible ({rows.size} px)"
        centre = torch.tensor(sim.data.geom_xpos[geom.id])
        uv, _ = project_points(centre, cam)
        errors[name] = float(np.hypot(*(uv.numpy() - [cols.mean(), rows.mean()])))
    return errors


# Hubs are vertical cylinders centred on their link's origin (the joint); the puck body's origin
# is its centre. In these poses each is unoccluded and inside the image.
POSES = [
    (np.array([0.0, 0.3, 0.3, 0.3]), (0.3, -0.2)),
    (np.array([0.3, -0.5, -0.4, 0.2]), (0.4, -0.2)),
    (np.array([-0.3, 0.8, 0.5, 0.4]), (0.3, 0.2)),
]


def test_projected_link_origins_land_on_their_masks():
    # A camera that sees the whole arm, base included.
    cfg = SimConfig(camera_position=(0.32, -0.7, 0.9), camera_lookat=(0.32, 0.0, 0.0),
                    camera_fovy_deg=50.0)  # fmt: skip
    with TabletopSim(cfg) as s:
        worst = 0.0
        for q, puck in POSES:
            pose(s, q, puck)
            # Link origins (hub centres) must match the geom centres exactly.
            for link in ("link1", "link2", "link3", "link4"):
                np.testing.assert_allclose(
                    s.body_positions()[link], s.data.geom_xpos[s.model.geom(f"{link}_hub").id]
                )
            errors = centroid_errors(
                s, ["link1_hub", "link2_hub", "link3_hub", "link4_hub", "puck"]
            )
            worst = max(worst, *errors.values())
        assert worst < 1.0, errors


def test_projected_puck_and_hubs_land_on_their_masks_default_camera(sim):
    sim.reset(0)
    for q, puck in POSES:
        pose(sim, q, puck)
        # The default camera cuts off the base; link1's hub sits at the image edge.
        errors = centroid_errors(sim, ["link2_hub", "link3_hub", "link4_hub", "puck"])
        assert max(errors.values()) < 1.0, errors
        # The puck's label mask as a whole (not just its geom) also centres on the body origin.
        rows, cols = np.nonzero(sim.puck_mask())
        uv, _ = project_points(torch.tensor(sim.puck_position()), sim.camera_model())
        assert np.hypot(*(uv.numpy() - [cols.mean(), rows.mean()])) < 1.0


def test_custom_urdf_path_is_used(tmp_path):
    text = DEFAULT_URDF.read_text().replace('name="wm_scara"', 'name="copy"')
    path = tmp_path / "copy.urdf"
    path.write_text(text)
    cfg = SimConfig(urdf=str(path), image_width=32, image_height=24)
    with TabletopSim(cfg) as s:
        assert s.joint_names == ("joint1", "joint2", "joint3", "joint4")
        assert s.render().shape == (24, 32, 3)
        cam = s.camera_model()
        assert cam.k[0, 2] == 15.5 and cam.k[1, 2] == 11.5
    with pytest.raises(FileNotFoundError):
        TabletopSim(SimConfig(urdf=str(tmp_path / "missing.urdf")))


def test_mujoco_camera_convention_assumption(sim):
    """MuJoCo cameras look along their -z axis: the optical frame's z is the negated mj z."""
    cam_id = sim.model.camera("scene").id
    mj_rot = sim.data.cam_xmat[cam_id].reshape(3, 3)
    np.testing.assert_allclose(sim.camera_model().rotation[:, 2], -mj_rot[:, 2])
    assert int(sim.model.cam_mode[cam_id]) == 0  # mjCAMLIGHT_FIXED: the camera never moves
