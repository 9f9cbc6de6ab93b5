"""Attack tasks on IBM's adversarial-robustness-toolbox: evasion, poisoning, inference and
extraction. The module names every task; discovery finds them here."""

from theodolite_attacks.blackbox import hop_skip_jump, square
from theodolite_attacks.evasion import carlini_wagner_l2, deepfool, fgm, fgsm, pgd
from theodolite_attacks.extraction import copycat
from theodolite_attacks.inference import MembershipScores, membership_inference
from theodolite_attacks.poisoning import Poisoned, Triggered, backdoor_poison, backdoor_trigger
from theodolite_attacks.sweep import Sweep, robustness_sweep

__all__ = [
    "MembershipScores",
    "Poisoned",
    "Sweep",
    "Triggered",
    "backdoor_poison",
    "backdoor_trigger",
    "carlini_wagner_l2",
    "copycat",
    "deepfool",
    "fgm",
    "fgsm",
    "hop_skip_jump",
    "membership_inference",
    "pgd",
    "robustness_sweep",
    "square",
]
