"""What model tokens cost: each kind at its own price (input, output, cache read, cache write), per model.

The defaults are BEDROCK_*_USD_PER_MTOK; BEDROCK_MODEL_PRICES overrides them for models whose id contains one of its
keys (the longest key that matches wins). A run records the engine it ran on ("bedrock:<model id>"), so runs of
different models are priced apart. The offline engine is not a model and costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

BEDROCK_PREFIX = "bedrock:"
OFFLINE = "offline"


@dataclass(frozen=True)
class Usage:
    tokens_in: int = 0  # every input token, cached ones included (as Bedrock's totals and langchain-aws count them)
    tokens_out: int = 0
    cache_read: int = 0
    cache_write: int = 0

    @property
    def uncached(self) -> int:
        return max(0, self.tokens_in - self.cache_read - self.cache_write)


def prices_for(engine: str) -> dict[str, float]:
    """USD per million tokens of each kind for the model behind `engine` (an engine name or a model id)."""
    if engine == OFFLINE:
        return {"input": 0.0, "output": 0.0, "cache_read": 0.0, "cache_write": 0.0}
    prices = {
        "input": settings.BEDROCK_INPUT_USD_PER_MTOK,
        "output": settings.BEDROCK_OUTPUT_USD_PER_MTOK,
        "cache_read": settings.BEDROCK_CACHE_READ_USD_PER_MTOK,
        "cache_write": settings.BEDROCK_CACHE_WRITE_USD_PER_MTOK,
    }
    model = engine.removeprefix(BEDROCK_PREFIX)
    matches = [key for key in settings.BEDROCK_MODEL_PRICES if key in model]
    if matches:
        prices.update(settings.BEDROCK_MODEL_PRICES[max(matches, key=len)])
    return prices


def cost_usd(*, engine: str, usage: Usage) -> float:
    """What Bedrock bills for this usage: uncached input, output, cache reads and cache writes at their prices."""
    prices = prices_for(engine)
    return (
        usage.uncached * prices["input"]
        + usage.tokens_out * prices["output"]
        + usage.cache_read * prices["cache_read"]
        + usage.cache_write * prices["cache_write"]
    ) / 1_000_000
