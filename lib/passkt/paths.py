"""Every artifact location in one place.

Each pipeline stage owns exactly two folders: ``data/<stage>/`` (artifacts, executed notebook, run_meta.json)
and ``figures/<stage>/`` (PNG + PDF + CSV per figure). DVC tracks both as the stage's outputs, so no two stages
ever own overlapping paths.
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


@dataclass(frozen=True)
class Paths:
    root: Path

    @classmethod
    def at(cls, root: str | Path = ".") -> "Paths":
        return cls(find_root(root))

    # generic stage folders -------------------------------------------------------------------------------
    def notebook(self, stage: str) -> Path:
        return self.root / "notebooks" / f"{stage}.ipynb"

    def data(self, stage: str) -> Path:
        return self.root / "data" / stage

    def figures(self, stage: str) -> Path:
        return self.root / "figures" / stage

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
