"""Every artifact location in one place.

Each pipeline stage owns exactly two folders: ``data/<stage>/`` (artifacts, executed notebook, run_meta.json)
and ``figures/<stage>/`` (PNG + PDF + CSV per figure). DVC tracks both as the stage's outputs, so no two stages
ever own overlapping paths. The training stages (SFT, GRPO) run once per training replicate, each replicate a DVC
``foreach`` unit owning ``data/<stage>/r<i>/`` and ``figures/<stage>/r<i>/``; a ``Paths`` built with
``replicate=i`` resolves those stages' folders (and the policies they sample) to replicate ``i``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STAGES = (
    "00_data_prep",
    "01_base_model",
    "02_base_rollouts",
    "03_sft",
    "04_grpo",
    "05_pass_at_k",
    "06_mechanism",
    "07_claims_audit",
)

# Stages run once per training replicate (dvc.yaml ``foreach: ${replicates}``).
REPLICATED = ("03_sft", "04_grpo")

# Which stage samples which policy, and where its rollouts live (relative to the stage's data folder).
POLICY_ROLLOUTS = {
    "base": ("02_base_rollouts", "rollouts"),
    "sft": ("03_sft", "rollouts"),
    "rl": ("04_grpo", "rollouts"),
    "rl_bonus": ("04_grpo", "rollouts_bonus"),
}


def find_root(start: str | Path = ".") -> Path:
    """The repository root: the nearest folder at or above ``start`` holding dvc.yaml."""
    p = Path(start).resolve()
    for q in (p, *p.parents):
        if (q / "dvc.yaml").exists():
            return q
    raise FileNotFoundError(f"no dvc.yaml at or above {p}: run from inside the passkt repository")


def replicate_seed(seed: int, replicate: int) -> int:
    """Training-and-sampling seed of replicate ``replicate`` under master ``seed``: 1000 * seed + replicate, so
    the replicates of master seeds 0 and 1 are disjoint (0, 1, 2 vs 1000, 1001, 1002)."""
    if not 0 <= replicate < 1000:
        raise ValueError(f"replicate {replicate} outside 0..999")
    return 1000 * seed + replicate


@dataclass(frozen=True)
class Paths:
    root: Path
    replicate: int = 0          # which training replicate the replicated stages' folders resolve to

    @classmethod
    def at(cls, root: str | Path = ".", replicate: int = 0) -> "Paths":
        return cls(find_root(root), replicate)

    def with_replicate(self, replicate: int) -> "Paths":
        return Paths(self.root, replicate)

    # generic stage folders -------------------------------------------------------------------------------
    def notebook(self, stage: str) -> Path:
        return self.root / "notebooks" / f"{stage}.ipynb"

    def _unit(self, stage: str) -> str:
        return f"{stage}/r{self.replicate}" if stage in REPLICATED else stage

    def data(self, stage: str) -> Path:
        """The stage's data folder (this replicate's for a replicated stage)."""
        return self.root / "data" / self._unit(stage)

    def figures(self, stage: str) -> Path:
        return self.root / "figures" / self._unit(stage)

    def executed_notebook(self, stage: str) -> Path:
        return self.data(stage) / f"{stage}.executed.ipynb"

    def run_meta(self, stage: str) -> Path:
        return self.data(stage) / "run_meta.json"

    # named artifacts ---------------------------------------------------------------------------------------
    @property
    def problems(self) -> Path:
        return self.data("00_data_prep") / "problems"

    @property
    def base_model(self) -> Path:
        return self.data("01_base_model") / "model"

    @property
    def sft_demos(self) -> Path:
        return self.data("03_sft") / "demos.parquet"

    @property
    def sft_model(self) -> Path:
        return self.data("03_sft") / "model"

    def grpo_run(self, bonus: bool = False) -> Path:
        """GRPO output folder: model/, checkpoints/, train_log.csv (plain run or exploration-bonus ablation)."""
        return self.data("04_grpo") / ("rl_bonus" if bonus else "rl")

    @property
    def rl_model(self) -> Path:
        return self.grpo_run(False) / "model"

    @property
    def rl_bonus_model(self) -> Path:
        return self.grpo_run(True) / "model"

    def rollouts(self, policy: str) -> Path:
        if policy not in POLICY_ROLLOUTS:
            raise KeyError(f"unknown policy {policy!r}; known: {sorted(POLICY_ROLLOUTS)}")
        stage, sub = POLICY_ROLLOUTS[policy]
        return self.data(stage) / sub

    @property
    def pass_metrics(self) -> Path:
        return self.data("05_pass_at_k") / "metrics.json"

    @property
    def counts(self) -> Path:
        return self.data("05_pass_at_k") / "counts.parquet"

    @property
    def paper_numbers(self) -> Path:
        """The paper's reported numbers as data (value, unit, figure/table, source quality, certainty)."""
        return self.root / "references" / "paper_numbers.yaml"

    @property
    def mechanism_metrics(self) -> Path:
        return self.data("06_mechanism") / "metrics.json"

    @property
    def claims_dir(self) -> Path:
        return self.figures("07_claims_audit")

    @property
    def claims_audit(self) -> Path:
        """What the claims report shows (``report.Audit`` as JSON), for rendering it again elsewhere."""
        return self.data("07_claims_audit") / "audit.json"
