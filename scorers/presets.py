"""Named vote presets: which proxies vote, and how their ranks are combined.

A preset is a choice of principle, not a fit: every voter counts once, no weights are learned from any
benchmark's accuracies, and the compositions were compared on NAS-Bench-201 CIFAR-10 only (the evidence
is docs/correlation_nb201_cifar10_n1000_seed0.md, with an independent sample in
docs/correlation_nb201_cifar10_n1000_seed1.md), so CIFAR-100 and ImageNet16-120 stay untouched checks.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class VotePreset:
    name: str
    proxies: tuple[str, ...]
    method: str
    description: str


PRESETS: dict[str, VotePreset] = {
    preset.name: preset
    for preset in (
        VotePreset(
            name="mission",
            proxies=("snip", "grasp", "synflow"),
            method="mean_rank",
            description="The three pruning-at-initialisation saliencies, Borda-voted as in Abdelfattah et al. "
            "(ICLR 2021). Kept for comparison: GraSP's weak ranking drags the vote below SynFlow alone.",
        ),
        VotePreset(
            name="azn",
            proxies=("az_expressivity", "az_progressivity", "az_trainability", "az_complexity"),
            method="log_rank",
            description="AZ-NAS (Lee & Ham, CVPR 2024): four proxies for four complementary properties, "
            "combined by the sum of log ranks, which rewards architectures no proxy ranks low.",
        ),
        VotePreset(
            name="best",
            proxies=("az_expressivity", "az_progressivity", "az_trainability", "az_complexity", "meco", "nwot"),
            method="log_rank",
            description="AZ-NAS's four plus two data-dependent views of the activations: MeCo's feature "
            "correlation spectrum and NASWOT's ReLU-code kernel, combined by the sum of log ranks.",
        ),
    )
}
DEFAULT_PRESET = "best"
# What a request that names no proxies computes: the mission's three and the default vote's voters.
DEFAULT_PROXIES: tuple[str, ...] = tuple(dict.fromkeys(PRESETS["mission"].proxies + PRESETS[DEFAULT_PRESET].proxies))


class UnknownPresetError(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown vote preset {self.name!r}; known presets: {', '.join(PRESETS)}"


def get_preset(name: str) -> VotePreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownPresetError(name) from None
