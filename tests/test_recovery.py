"""Recovery on data that mix: a small case that trains in seconds and must beat every baseline.

This is the test that fails when training does nothing (a learning rate forced to 0) or when the
generator stops mixing: raw x, the untrained model and FastICA are scored beside the trained flow.
"""

from __future__ import annotations

import warnings

from ginmi.app.synthetic import SyntheticModelConfig, make_test_sets
from ginmi.data.synthetic import make_synthetic
from ginmi.tasks.identifiability import recovery
from ginmi.tasks.recovery_baselines import baseline_recovery
from ginmi.training import TrainConfig
from ginmi.vector import compute_latents, train_vector_model


def test_small_mixed_data_recovery_beats_every_baseline():
    data = make_synthetic(3000, seed=1, mixing=2.0)
    test = make_test_sets(data, 1000, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small-data note
        model, history, _ = train_vector_model(
            data.x,
            data.u,
            list(range(5)),
            SyntheticModelConfig(linear_stage=True),
            TrainConfig(epochs=20),
            progress=False,
        )
    trained = recovery(
        compute_latents(model, data.x), data.u, compute_latents(model, test.x), test.latent, data.informative
    )
    baselines = baseline_recovery(model, data.x, data.u, test.x, test.latent, data.informative)
    best = max(b["mcc"]["informative"] for b in baselines.values())
    assert best < 0.75  # the data mix: no baseline recovers the informative latents
    assert trained["mcc"]["informative"] > best + 0.05
    assert trained["top_n_correct"]["mi"]
    assert history["epoch_loss"][-1] < history["epoch_loss"][0] - 1.0  # the flow and its statistics learned
