"""Writes the .fvecs/.ivecs fixtures of tests/it/ann_files.rs with numpy, the way the ANN
benchmarks' own tools do. Run from this folder: python3 make_vecs.py (numpy 2.4.6 wrote the committed files)."""

import numpy as np


def write_vecs(path, x):
    n, d = x.shape
    np.hstack([np.full((n, 1), d, dtype=np.int32).view(x.dtype), x]).tofile(path)


rng = np.random.default_rng(25)
base = rng.standard_normal((1000, 16)).astype(np.float32)
queries = rng.standard_normal((40, 16)).astype(np.float32)
unit = base / np.linalg.norm(base, axis=1, keepdims=True)
q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
truth = np.argsort(-(q @ unit.T), axis=1, kind="stable")[:, :10].astype(np.int32)
write_vecs("base.fvecs", base)
write_vecs("queries.fvecs", queries)
write_vecs("truth.ivecs", truth)
# A pattern the test can check value by value: row i is i + j / 4 for column j.
pattern = (np.arange(3, dtype=np.float32)[:, None] + np.arange(5, dtype=np.float32)[None, :] / 4)
write_vecs("pattern.fvecs", pattern)
write_vecs("pattern.ivecs", (np.arange(6, dtype=np.int32) - 2).reshape(2, 3) * 1000)
