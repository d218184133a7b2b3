"""URDF parsing, batched forward kinematics and skeletons (wm_ros.kinematics)."""

import math

import numpy as np
import pytest
import torch

from wm_ros.kinematics import (
    TOOL_KEYPOINT,
    ForwardKinematics,
    Skeleton,
    URDFError,
    load_urdf,
    rpy_to_matrix,
)

PLANAR = """
<robot name="planar2">
  <link name="base"/>
  <link name="upper"/>
  <link name="fore"/>
  <link name="tip"/>
  <joint name="shoulder" type="revolute">
    <parent link="base"/><child link="upper"/>
    <origin xyz="0 0 0.1"/><axis xyz="0 0 1"/>
    <limit lower="-3" upper="3" effort="1" velocity="1"/>
  </joint>
  <joint name="elbow" type="revolute">
    <parent link="upper"/><child link="fore"/>
    <origin xyz="1.0 0 0"/><axis xyz="0 0 1"/>
    <limit lower="-3" upper="3" effort="1" velocity="1"/>
  </joint>
  <joint name="tip_joint" type="fixed">
    <parent link="fore"/><child link="tip"/><origin xyz="0.5 0 0"/>
  </joint>
</robot>
"""

# A differently shaped arm: revolute joints about z and y, a prismatic joint, a continuous
# wrist, a fixed joint with rpy, a mesh given by an unresolvable package:// URI, and a
# two-finger gripper whose right finger mimics the left one (multiplier -1, offset 0.01).
ARM6 = """
<robot name="arm6">
  <link name="world"/>
  <link name="base"><visual><geometry><mesh filename="package://nowhere/base.stl"/></geometry></visual></link>
  <link name="l1"/><link name="l2"/><link name="l3"/><link name="l4"/><link name="l5"/>
  <link name="flange"/><link name="hand"/><link name="finger_l"/><link name="finger_r"/>
  <link name="tcp"/>
  <joint name="world_fix" type="fixed"><parent link="world"/><child link="base"/>
    <origin xyz="0.5 0 0"/></joint>
  <joint name="j1" type="revolute"><parent link="base"/><child link="l1"/>
    <origin xyz="0 0 0.3"/><axis xyz="0 0 1"/>
    <limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
  <joint name="j2" type="revolute"><parent link="l1"/><child link="l2"/>
    <origin xyz="0 0 0.1" rpy="0 0 0"/><axis xyz="0 1 0"/>
    <limit lower="-2" upper="2" effort="1" velocity="1"/></joint>
  <joint name="j3" type="prismatic"><parent link="l2"/><child link="l3"/>
    <origin xyz="0.4 0 0"/><axis xyz="1 0 0"/>
    <limit lower="0" upper="0.3" effort="1" velocity="1"/></joint>
  <joint name="j4" type="revolute"><parent link="l3"/><child link="l4"/>
    <origin xyz="0.2 0 0"/><axis xyz="0 1 0"/>
    <limit lower="-2" upper="2" effort="1" velocity="1"/></joint>
  <joint name="j5" type="continuous"><parent link="l4"/><child link="l5"/>
    <origin xyz="0.1 0 0"/><axis xyz="1 0 0"/></joint>
  <joint name="j6" type="revolute"><parent link="l5"/><child link="flange"/>
    <origin xyz="0.05 0 0"/><axis xyz="0 0 1"/>
    <limit lower="-2" upper="2" effort="1" velocity="1"/></joint>
  <joint name="hand_fix" type="fixed"><parent link="flange"/><child link="hand"/>
    <origin xyz="0.02 0 0" rpy="0 1.5707963267948966 0"/></joint>
  <joint name="grip" type="prismatic"><parent link="hand"/><child link="finger_l"/>
    <origin xyz="0 0.01 0.05"/><axis xyz="0 1 0"/>
    <limit lower="0" upper="0.04" effort="1" velocity="1"/></joint>
  <joint name="grip_mimic" type="prismatic"><parent link="hand"/><child link="finger_r"/>
    <origin xyz="0 -0.01 0.05"/><axis xyz="0 1 0"/>
    <limit lower="-0.05" upper="0" effort="1" velocity="1"/>
    <mimic joint="grip" multiplier="-1" offset="-0.01"/></joint>
  <joint name="tcp_fix" type="fixed"><parent link="hand"/><child link="tcp"/>
    <origin xyz="0 0 0.1"/></joint>
</robot>
"""


def rodrigues(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def reference_fk(model, q):
    """Independent numpy FK: 4x4 products along each link's chain."""
    values = dict(zip(model.actuated_joint_names, q, strict=True))
    for j in model.joints:
        if j.mimic is not None:
            master, mult, off = model.resolve_mimic(j)
            values[j.name] = mult * values[master] + off
    poses = {model.root: np.eye(4)}
    for j in model.joints:
        motion = np.eye(4)
        if j.type in ("revolute", "continuous"):
            motion[:3, :3] = rodrigues(j.axis, values[j.name])
        elif j.type == "prismatic":
            motion[:3, 3] = j.axis * values[j.name]
        poses[j.child] = poses[j.parent] @ j.origin @ motion
    return np.stack([poses[n] for n in model.link_names])


# ------------------------------------------------------------------------- parsing


def test_parse_planar_model_order_and_limits():
    model = load_urdf(PLANAR)
    assert model.root == "base"
    assert model.link_names == ("base", "upper", "fore", "tip")
    assert model.actuated_joint_names == ("shoulder", "elbow")
    np.testing.assert_allclose(model.joint_limits, [[-3, 3], [-3, 3]])


def test_parse_from_file_and_mesh_uri_ignored(tmp_path):
    path = tmp_path / "arm6.urdf"
    path.write_text(ARM6)
    model = load_urdf(path)
    assert load_urdf(str(path)).link_names == model.link_names
    assert model.root == "world"
    (visual,) = model.link("base").visuals
    assert visual.geometry == "mesh" and visual.filename == "package://nowhere/base.stl"
    assert model.actuated_joint_names == ("j1", "j2", "j3", "j4", "j5", "j6", "grip")
    assert model.joint("grip_mimic").mimic.multiplier == -1.0
    assert math.isinf(model.joint("j5").lower)  # continuous


def test_rpy_matches_fixed_axis_convention():
    r, p, y = 0.3, -0.7, 1.1
    expected = rodrigues([0, 0, 1], y) @ rodrigues([0, 1, 0], p) @ rodrigues([1, 0, 0], r)
    np.testing.assert_allclose(rpy_to_matrix([r, p, y]), expected, atol=1e-12)


# ------------------------------------------------------------------------- FK


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_planar_fk_matches_hand_computed_poses(dtype):
    fk = ForwardKinematics(load_urdf(PLANAR))
    q = torch.tensor([[0.0, 0.0], [math.pi / 2, 0.0], [0.3, -1.1], [-2.0, 2.5]], dtype=dtype)
    poses = fk.link_poses(q)  # (4, L, 4, 4)
    assert poses.shape == (4, 4, 4, 4) and poses.dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    for i, (a, b) in enumerate(q.double().numpy()):
        elbow = [math.cos(a), math.sin(a), 0.1]
        tip = [math.cos(a) + 0.5 * math.cos(a + b), math.sin(a) + 0.5 * math.sin(a + b), 0.1]
        np.testing.assert_allclose(poses[i, 0].numpy(), np.eye(4), atol=tol)
        np.testing.assert_allclose(poses[i, 1, :3, 3].numpy(), [0, 0, 0.1], atol=tol)
        np.testing.assert_allclose(poses[i, 2, :3, 3].numpy(), elbow, atol=tol)
        np.testing.assert_allclose(poses[i, 3, :3, 3].numpy(), tip, atol=tol)
        np.testing.assert_allclose(
            poses[i, 3, :3, :3].numpy(), rodrigues([0, 0, 1], a + b), atol=tol
        )


def test_fk_any_leading_shape_and_positions():
    fk = ForwardKinematics(load_urdf(PLANAR))
    q = torch.randn(2, 3, 5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    poses = fk.link_poses(q)
    assert poses.shape == (2, 3, 5, 4, 4, 4)
    flat = fk.link_poses(q.reshape(-1, 2)).reshape(poses.shape)
    torch.testing.assert_close(poses, flat)
    tips = fk.link_positions(q, ["tip"])
    torch.testing.assert_close(tips[..., 0, :], poses[..., 3, :3, 3])


def test_arm6_known_configurations():
    model = load_urdf(ARM6)
    fk = ForwardKinematics(model)
    names = list(model.link_names)

    def pos(q, link):
        return fk.link_positions(torch.tensor(q, dtype=torch.float64), [link])[0].numpy()

    zero = [0.0] * 7
    # At zero: base 0.5 in x; l2 at height 0.4; arm out along x: 0.4 + 0.2 + 0.1 + 0.05 + 0.02.
    np.testing.assert_allclose(pos(zero, "hand"), [0.5 + 0.77, 0, 0.4], atol=1e-12)
    # The fixed hand pitch (+90 deg) turns the hand's z into the base's +x: TCP 0.1 further.
    np.testing.assert_allclose(pos(zero, "tcp"), [0.5 + 0.87, 0, 0.4], atol=1e-12)
    # Prismatic j3 extends everything after it along x by its value (metres).
    ext = zero.copy()
    ext[2] = 0.25
    np.testing.assert_allclose(pos(ext, "tcp") - pos(zero, "tcp"), [0.25, 0, 0], atol=1e-12)
    # j1 = 90 deg swings the arm to +y about the base's vertical axis at x = 0.5.
    yaw = zero.copy()
    yaw[0] = math.pi / 2
    np.testing.assert_allclose(pos(yaw, "tcp"), [0.5, 0.87, 0.4], atol=1e-12)
    # j2 = +90 deg about y points the arm straight down from the shoulder (z = 0.4).
    pitch = zero.copy()
    pitch[1] = math.pi / 2
    np.testing.assert_allclose(pos(pitch, "hand"), [0.5, 0, 0.4 - 0.77], atol=1e-12)
    # The continuous wrist is 2 pi periodic.
    spin = zero.copy()
    spin[4] = 2 * math.pi
    np.testing.assert_allclose(pos(spin, "finger_l"), pos(zero, "finger_l"), atol=1e-12)
    # Mimic: opening the gripper by g moves the left finger +g and the right one -g - 0.01
    # along the hand's y axis (base y at zero pose).
    grip = zero.copy()
    grip[6] = 0.03
    np.testing.assert_allclose(
        pos(grip, "finger_l") - pos(zero, "finger_l"), [0, 0.03, 0], atol=1e-12
    )
    np.testing.assert_allclose(
        pos(grip, "finger_r") - pos(zero, "finger_r"), [0, -0.03, 0], atol=1e-12
    )
    np.testing.assert_allclose(pos(zero, "finger_r")[1], -0.01 - 0.01, atol=1e-12)
    assert names.index("finger_l") < names.index("tcp")


def test_arm6_matches_reference_over_random_configurations():
    model = load_urdf(ARM6)
    fk = ForwardKinematics(model)
    rng = np.random.default_rng(1)
    q = rng.uniform(-2.0, 2.0, size=(64, 7))
    poses = fk.link_poses(torch.tensor(q)).numpy()
    for i in range(len(q)):
        np.testing.assert_allclose(poses[i], reference_fk(model, q[i]), atol=1e-12)
    poses32 = fk.link_poses(torch.tensor(q, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(poses32, poses, atol=2e-6)


def test_points_with_offsets_in_link_frames():
    model = load_urdf(ARM6)
    fk = ForwardKinematics(model)
    q = torch.tensor(np.random.default_rng(5).uniform(-1, 1, (3, 4, 7)))
    links = [model.link_index(n) for n in ("l3", "tcp", "world", "tcp")]
    offsets = np.array([[0.1, -0.2, 0.3], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.0, 0.05, 0.0]])
    points = fk.points(q, links, offsets)  # (3, 4, 4, 3)
    poses = fk.link_poses(q)[..., links, :, :]  # (3, 4, 4, 4, 4)
    homogeneous = torch.cat([torch.tensor(offsets), torch.ones(4, 1, dtype=q.dtype)], dim=1)
    expected = (poses @ homogeneous[..., None])[..., :3, 0]
    torch.testing.assert_close(points, expected)


def test_base_link_other_than_root():
    model = load_urdf(ARM6)
    q = torch.tensor(np.random.default_rng(2).uniform(-1, 1, (8, 7)))
    world = ForwardKinematics(model).link_poses(q)
    based = ForwardKinematics(model, base_link="base").link_poses(q)
    base_pose = world[:, model.link_index("base")]
    torch.testing.assert_close(based, torch.linalg.inv(base_pose)[:, None] @ world)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_fk_on_cuda_matches_cpu():
    fk = ForwardKinematics(load_urdf(ARM6))
    q = torch.randn(128, 7, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(fk.link_poses(q.cuda()).cpu(), fk.link_poses(q), atol=1e-5, rtol=0)


# ------------------------------------------------------------------------- joint states


def test_joint_state_matched_by_name():
    model = load_urdf(ARM6)
    names = ["grip", "other_robot_joint", "j6", "j5", "j4", "j3", "j2", "j1", "grip_mimic"]
    values = np.arange(len(names), dtype=float)
    ordered = model.order_joint_values(names, values)
    np.testing.assert_array_equal(ordered, [7, 6, 5, 4, 3, 2, 0])
    batch = np.stack([values, values + 10])
    np.testing.assert_array_equal(model.order_joint_values(names, batch)[1], ordered + 10)


def test_joint_state_missing_joint_is_an_error():
    model = load_urdf(ARM6)
    with pytest.raises(ValueError, match=r"lacks joint\(s\) \['j3'\]"):
        model.joint_order(["j1", "j2", "j4", "j5", "j6", "grip"])
    with pytest.raises(ValueError, match="repeat"):
        model.joint_order(["j1", "j1"])


# ------------------------------------------------------------------------- skeletons


def test_default_skeleton_planar():
    sk = Skeleton.from_model(load_urdf(PLANAR), tool_link="tip")
    assert sk.keypoint_names == ("base", "upper", "fore", "tip")
    assert sk.edges == ((0, 1), (1, 2), (2, 3))
    assert sk.edge_names == ("base", "upper", "fore")
    assert sk.keypoint_kinds[sk.tool_index] == "tool" and not sk.gripper


def test_default_skeleton_with_gripper_merges_coincident_links():
    model = load_urdf(ARM6)
    sk = Skeleton.from_model(model, tool_link="tcp", tool_offset=(0, 0, 0.02))
    # world -> base is kept (offset 0.5); no zero-offset link on this chain; fingers added.
    assert sk.keypoint_names[:2] == ("world", "base")
    assert "finger_l" in sk.keypoint_names and "finger_r" in sk.keypoint_names
    assert sk.gripper and sk.edge_names[-1] == "<gripper>"
    left, right = sk.keypoint_names.index("finger_l"), sk.keypoint_names.index("finger_r")
    assert sk.edges[-1] == (left, right)
    assert sk.keypoint_names[sk.tool_index] == TOOL_KEYPOINT
    np.testing.assert_allclose(sk.keypoint_offsets[sk.tool_index], [0, 0, 0.02])
    # Fingers hang off the hand, the tool point off the tcp.
    hand = sk.keypoint_names.index("hand")
    assert (hand, left) in sk.edges and (hand, right) in sk.edges


def test_coincident_links_merged():
    urdf = PLANAR.replace('<origin xyz="1.0 0 0"/>', '<origin xyz="0 0 0"/>')
    sk = Skeleton.from_model(load_urdf(urdf), tool_link="tip")
    assert sk.keypoint_names == ("base", "upper", "tip")


def test_configured_skeleton_links():
    model = load_urdf(ARM6)
    sk = Skeleton.from_model(model, tool_link="tcp", links=("base", "l2", "l4", "tcp"))
    assert sk.keypoint_names == ("base", "l2", "l4", "tcp")
    assert sk.edges == ((0, 1), (1, 2), (2, 3)) and not sk.gripper


# ------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("<robot name='x'><link name='a'/", "malformed URDF XML"),
        ("<sdf><model/></sdf>", "not a URDF"),
        ("<robot name='x'></robot>", "no links"),
        (
            "<robot name='x'><link name='a'/><link name='b'/></robot>",
            r"several root links \['a', 'b'\]",
        ),
        (
            "<robot name='x'><link name='a'/><link name='b'/>"
            "<joint name='j' type='fixed'><parent link='a'/><child link='b'/></joint>"
            "<joint name='k' type='fixed'><parent link='b'/><child link='a'/></joint></robot>",
            "no root link",
        ),
        (
            "<robot name='x'><link name='a'/>"
            "<joint name='j' type='fixed'><parent link='a'/><child link='zz'/></joint></robot>",
            "unknown link 'zz'",
        ),
        (
            "<robot name='x'><link name='a'/><link name='b'/>"
            "<joint name='j' type='floating'><parent link='a'/><child link='b'/></joint></robot>",
            "type 'floating' is not supported",
        ),
        (
            "<robot name='x'><link name='a'/><link name='b'/>"
            "<joint name='j' type='revolute'><parent link='a'/><child link='b'/>"
            "<mimic joint='ghost'/></joint></robot>",
            "mimics unknown joint 'ghost'",
        ),
        (
            "<robot name='x'><link name='a'/><link name='b'/>"
            "<joint name='j' type='revolute'><parent link='a'/><child link='b'/>"
            "<origin xyz='0 0 zero'/></joint></robot>",
            "expected 3 numbers",
        ),
    ],
)
def test_bad_urdf_raises_clear_value_error(text, match):
    with pytest.raises(ValueError, match=match):
        load_urdf(text)
    assert issubclass(URDFError, ValueError)


def test_missing_urdf_file(tmp_path):
    with pytest.raises(ValueError, match="URDF file not found"):
        load_urdf(tmp_path / "nope.urdf")


def test_tool_link_unknown_or_unreachable():
    model = load_urdf(ARM6)
    with pytest.raises(ValueError, match="no link 'gripper_tip'"):
        Skeleton.from_model(model, tool_link="gripper_tip")
    with pytest.raises(ValueError, match="'l1' is not reachable from link 'l3'"):
        Skeleton.from_model(model, tool_link="l1", base_link="l3")


def test_fk_rejects_bad_joint_arrays():
    fk = ForwardKinematics(load_urdf(PLANAR))
    with pytest.raises(ValueError, match="2 actuated joints"):
        fk.link_poses(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="floating-point"):
        fk.link_poses(torch.zeros(4, 2, dtype=torch.long))


# ------------------------------------------------------------------------- the simulator


@pytest.fixture(scope="module")
def sim():
    from wm_ros.sim import TabletopSim

    s = TabletopSim()
    yield s
    s.close()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fk_agrees_with_mujoco_body_poses(sim, dtype):
    import mujoco

    from wm_ros.sim import DEFAULT_URDF

    model = load_urdf(DEFAULT_URDF)
    fk = ForwardKinematics(model)
    order = model.joint_order(sim.joint_names)
    rng = np.random.default_rng(4)
    limits = sim.joint_limits
    q_sim = rng.uniform(limits[:, 0], limits[:, 1], size=(100, len(limits)))
    rot, pos = fk.rotations_translations(torch.tensor(q_sim[:, order], dtype=dtype))
    data = mujoco.MjData(sim.model)
    bodies = [sim.model.body(name).id for name in model.link_names]
    for i in range(len(q_sim)):
        data.qpos[sim.qpos_adr] = q_sim[i]
        mujoco.mj_kinematics(sim.model, data)
        np.testing.assert_allclose(pos[i].double().numpy(), data.xpos[bodies], atol=1e-5, rtol=0)
        mj_rot = data.xmat[bodies].reshape(-1, 3, 3)
        np.testing.assert_allclose(rot[i].double().numpy(), mj_rot, atol=1e-5, rtol=0)
    # ... and with the simulator's own tool point, through its public API.
    tool = model.link_index("tool")
    for i in range(5):
        np.testing.assert_allclose(
            pos[i, tool].double().numpy(), sim.tool_position_at(q_sim[i]), atol=1e-5, rtol=0
        )
