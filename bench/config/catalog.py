"""The catalog option: the servers the planner sizes for, and every price it may use, each with
the date it was read and where (a price is a fact of its day, not of a measurement)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from bench.registry import option
from bench.validation import Choice, at_least, require


@dataclass
class PriceConfig:
    """A monthly price for one catalog server, with the date it was quoted and where; all
    three are required, so no price enters a plan without its provenance."""

    eur_per_month: float = MISSING
    as_of: str = MISSING  # ISO date: 2026-10-07, or 2026-10
    source: str = MISSING  # a URL, an offer id, or a catalog source id


class BilledTime(Choice):
    busy = "busy"
    lifetime = "lifetime"


@dataclass
class ServerlessPricingConfig:
    """Pay-per-use prices, with the date they were read and where; null prices leave the cost
    columns NaN. Defaults: AWS Lambda on-demand, x86, US East (N. Virginia), the first duration
    tier (up to 6 billion GB-s a month), free tier not deducted. Read 2026-11-25: USD 0.20 per
    million requests and USD 0.00001667 per GB-second in the worked examples of
    https://aws.amazon.com/lambda/pricing/ and in AWS's whitepaper "How AWS Pricing Works"
    (https://docs.aws.amazon.com/whitepapers/latest/how-aws-pricing-works/lambda.html); the
    tier's unrounded 0.0000166667 as transcribed from that page by Artillery's
    lib/platform/aws-lambda/prices.js (2.0.28). The page's own tables render client-side."""

    currency: str = "USD"  # of the prices, and so of the plan's serverless costs
    per_gb_second: float | None = 0.0000166667
    per_million_requests: float | None = 0.20
    # What GB-seconds are billed: busy (Lambda: each instance's start-up and the requests it
    # served, idle keep-alive free) or lifetime (instance-based billing: spawn to stop).
    billed_time: BilledTime = BilledTime.busy
    as_of: str = "2026-11-25"
    source: str = "https://aws.amazon.com/lambda/pricing/"

    def validate(self, at: str) -> None:
        require(
            len(self.currency) == 3 and self.currency.isalpha(),
            f"{at}.currency",
            f"must be an ISO 4217 code such as USD or EUR, got {self.currency!r}",
        )
        for name in ("per_gb_second", "per_million_requests"):
            at_least(getattr(self, name), 0, f"{at}.{name}", nullable=True)


@option("catalog")
@dataclass
class CatalogConfig:
    """The source document's servers with public facts and sources; prices only where given."""

    name: str = "default"
    # The catalog file; null: the bundled conf/catalog/data/servers.yaml.
    path: str | None = None
    # Server id -> price. Servers without one are sized but not costed.
    prices: dict[str, PriceConfig] = field(default_factory=dict)
    # What a serverless platform charges, for the cost of measured serverless usage.
    serverless_pricing: ServerlessPricingConfig = field(default_factory=ServerlessPricingConfig)

    def validate(self, at: str = "catalog") -> None:
        self.serverless_pricing.validate(f"{at}.serverless_pricing")
