"""Shared test data."""

#: A tiny discrete-time teacher-student network: a real backend run in well under a second per point.
TINY_MLP_YAML = """\
name: tiny-mlp
model: mlp
network: {layers: [4, 8, 3], activation: tanh, output_linear: true}
plasticity: {feedback: fa}
task: {name: teacher, n_train: 64, n_test: 32}
training: {epochs: 8, batch_size: 16, lr: 0.05}
"""
