"""ONNX export of the world model and the onnxruntime planning backend.

    wm-ros export-onnx --model models/sim_tabletop --out models/sim_tabletop/onnx
    world = OnnxWorldModel("models/sim_tabletop/onnx", device="cpu")

`onnx.py` writes the graphs, `ort.py` runs them in place of the torch networks (the sampler,
the chunked rollout and the planner stay the torch code), `parity.py` compares the two.
"""
