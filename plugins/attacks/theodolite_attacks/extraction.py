"""Model extraction through ART's CopycatCNN: a thief trained on the victim's answers."""

from __future__ import annotations

import copy

import numpy as np
from art.attacks.extraction import CopycatCNN
from art.estimators.classification import PyTorchClassifier
from art.estimators.classification.classifier import ClassifierMixin

from theodolite.sdk import current, resolve_seed, seeded, task
from theodolite.sdk.checks import bad_input
from theodolite_attacks._checks import check_classifier, check_inputs, check_positive_int


@task
def copycat(
    victim: ClassifierMixin,
    thief: ClassifierMixin,
    x_query: np.ndarray,
    query_budget: int,
    epochs: int = 10,
    batch_size: int = 64,
    use_probability: bool = False,
    seed: int | None = None,
) -> ClassifierMixin:
    """Steal a model with query access (ART's CopycatCNN): ``query_budget`` random rows of
    ``x_query`` are labelled by the victim and a copy of ``thief`` is trained on the answers.

    Args:
        victim: the model under attack, as an ART classifier (only its predictions are used)
        thief: an untrained PyTorch ART classifier to train (it is copied, not changed)
        x_query: the attacker's unlabelled inputs
        query_budget: how many of them the victim labels, in [1, len(x_query)]
        epochs: training epochs of the thief
        batch_size: batch size of the queries and of the training
        use_probability: train on the victim's probabilities rather than its labels
        seed: seed of the choice of queries and of the training order (default: the step's seed)
    """
    name = "attacks.copycat"
    check_classifier(name, victim, name="victim")
    check_classifier(name, thief, name="thief")
    if not isinstance(thief, PyTorchClassifier) or thief.optimizer is None:
        raise bad_input(
            name,
            "thief",
            "must be a PyTorch ART classifier with an optimizer (models.build_cnn "
            "then models.art_classifier)",
        )
    x_query = check_inputs(name, victim, x_query, "x_query")
    if tuple(thief.input_shape) != tuple(x_query.shape[1:]):
        raise bad_input(
            name,
            "thief",
            f"takes rows of shape {list(thief.input_shape)}, x_query has {list(x_query.shape[1:])}",
        )
    if not 1 <= query_budget <= len(x_query):
        raise bad_input(
            name,
            "query_budget",
            f"must lie in [1, {len(x_query)}] (rows of x_query), got {query_budget}",
        )
    check_positive_int(name, "epochs", epochs)
    check_positive_int(name, "batch_size", batch_size)
    stolen = copy.deepcopy(thief)
    attack = CopycatCNN(
        classifier=victim,
        batch_size_fit=batch_size,
        batch_size_query=batch_size,
        nb_epochs=epochs,
        nb_stolen=query_budget,
        use_probability=use_probability,
    )
    current().progress(0.0, f"{query_budget} queries, {epochs} epochs")
    with seeded(resolve_seed(name, seed)):
        return attack.extract(x=x_query.astype(np.float32, copy=False), thieved_classifier=stolen)
