"""The plan store: what a plan is, and the one place that knows how a plan folder lays it out.

`Plan.write(folder)` writes `folder/plan/`; `Plan.read(folder)` reads it back, so the report
shows a plan without knowing its file names. Layout:

    plan/sizing.csv            one row per configuration, measuring host and catalog server
    plan/recommendation.txt    the one sentence
    plan/formula.txt           the scaling model, in words
    plan/tableN.csv            the source document's tables, in order (titles in plan.json)
    plan/tables.md             the same tables as one Markdown page, the recommendation first
    plan/serverless.csv        per serverless point: its usage, cost per million, and the prices'
                               currency, date and source
    plan/serverless.txt        the serverless-versus-dedicated break-even sentence, if any
    plan/kubernetes/*.yaml     Deployment, Service, Ingress, HorizontalPodAutoscaler
    plan/monitoring/           Prometheus alerting rules (alerts.yaml), the same as a
                               PrometheusRule, a ServiceMonitor (*.yaml), a Grafana dashboard
                               (dashboard.json)
    plan/image/                the serving image's build context (written, not read back)
    plan/plan.json             the index: the tables' titles

Imports nothing that measures, and nothing of the planner: readers (the report) import it alone.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

PLAN_DIR = "plan"
SIZING = "sizing.csv"
RECOMMENDATION = "recommendation.txt"
FORMULA = "formula.txt"
TABLES = "tables.md"
TABLE = "table{number}.csv"
SERVERLESS = "serverless.csv"
BREAK_EVEN = "serverless.txt"
KUBERNETES = "kubernetes"
MONITORING = "monitoring"
IMAGE = "image"
INDEX = "plan.json"


@dataclass
class Plan:
    """A plan: the sizing, the recommendation and what it takes to deploy it."""

    recommendation: str
    sizing: pd.DataFrame = field(default_factory=pd.DataFrame)
    formula: str = ""
    # Title -> table, in the source document's order.
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    # Per serverless point: its usage and its cost at the configured prices.
    serverless: pd.DataFrame = field(default_factory=pd.DataFrame)
    break_even: str = ""
    # File name -> Kubernetes manifest.
    manifests: dict[str, dict] = field(default_factory=dict)
    # File name -> monitoring document: YAML (rules, Prometheus Operator resources) or JSON (a
    # Grafana dashboard), by the name's suffix.
    monitoring: dict[str, dict] = field(default_factory=dict)
    # Writes the serving image's build context into the folder it is given; None: no image.
    # Written only: `read` leaves it None and the context stays in `folder / "image"`.
    image: Callable[[Path], object] | None = None
    # The plan folder `read` found it in (None for a plan not read from a folder).
    folder: Path | None = None

    def write(self, folder: str | os.PathLike) -> Path:
        """Write the plan into `folder/plan/`, replacing any plan there; return that folder."""
        out = Path(folder) / PLAN_DIR
        out.mkdir(parents=True, exist_ok=True)
        _clear(out)
        self.sizing.to_csv(out / SIZING, index=False)
        (out / RECOMMENDATION).write_text(self.recommendation + "\n")
        (out / FORMULA).write_text(self.formula)
        markdown = [f"# Plan: {self.recommendation}\n"]
        if self.break_even:
            markdown.append(f"{self.break_even}\n")
            (out / BREAK_EVEN).write_text(self.break_even + "\n")
        for number, (title, table) in enumerate(self.tables.items(), start=1):
            table.to_csv(out / TABLE.format(number=number), index=False)
            markdown.append(f"## {title}\n\n{to_markdown(table)}\n")
        (out / TABLES).write_text("\n".join(markdown))
        if not self.serverless.empty:
            self.serverless.to_csv(out / SERVERLESS, index=False)
        if self.manifests:
            (out / KUBERNETES).mkdir()
            for name, manifest in self.manifests.items():
                (out / KUBERNETES / name).write_text(yaml.safe_dump(manifest, sort_keys=False))
        if self.monitoring:
            (out / MONITORING).mkdir()
            for name, document in self.monitoring.items():
                (out / MONITORING / name).write_text(_dump(name, document))
        if self.image is not None:
            self.image(out / IMAGE)
        (out / INDEX).write_text(json.dumps({"tables": list(self.tables)}, indent=2) + "\n")
        return out

    @classmethod
    def read(cls, folder: str | os.PathLike) -> Plan:
        """The plan written into `folder/plan/`; FileNotFoundError when there is none."""
        where = Path(folder) / PLAN_DIR
        if not (where / SIZING).exists():
            raise FileNotFoundError(f"{where}: no plan here")
        index = _json(where / INDEX)
        titles = list(index.get("tables") or [])
        tables = {}
        number = 1
        while (path := where / TABLE.format(number=number)).exists():
            title = titles[number - 1] if number <= len(titles) else f"Table {number}"
            tables[title] = _csv(path)
            number += 1
        manifests = {
            path.name: yaml.safe_load(path.read_text())
            for path in sorted((where / KUBERNETES).glob("*.yaml"))
        }
        monitoring = {
            path.name: _load(path)
            for path in sorted((where / MONITORING).glob("*"))
            if path.suffix in (".json", ".yaml")
        }
        return cls(
            recommendation=_text(where / RECOMMENDATION),
            sizing=_csv(where / SIZING),
            formula=_text(where / FORMULA),
            tables=tables,
            serverless=_csv(where / SERVERLESS),
            break_even=_text(where / BREAK_EVEN),
            manifests=manifests,
            monitoring=monitoring,
            folder=where,
        )


def to_markdown(table: pd.DataFrame) -> str:
    """A table as a Markdown table, cells as they are."""
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _clear(where: Path) -> None:
    """Remove what an earlier plan wrote, so that nothing of it outlives the new one (a
    break-even or manifests the new plan has none of)."""
    for name in (SIZING, RECOMMENDATION, FORMULA, TABLES, SERVERLESS, BREAK_EVEN, INDEX):
        (where / name).unlink(missing_ok=True)
    for path in where.glob(TABLE.format(number="*")):
        path.unlink()
    for name in (KUBERNETES, MONITORING, IMAGE):
        shutil.rmtree(where / name, ignore_errors=True)


def _dump(name: str, document: dict) -> str:
    if name.endswith(".json"):
        return json.dumps(document, indent=2) + "\n"
    return yaml.safe_dump(document, sort_keys=False, width=100)


def _load(path: Path) -> dict:
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def _csv(path: Path) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:  # an empty table is written as an empty file
        return pd.DataFrame()


def _text(path: Path) -> str:
    return path.read_text().strip() if path.exists() else ""


def _json(path: Path) -> dict:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}
