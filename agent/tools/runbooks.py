"""search_runbooks: the admin-curated runbooks and the enabled workflows' runbooks, ranked by term overlap."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent.policy import Risk
from agent.tools import register
from agent.tools._summary import clip
from agent.tools.base import ErrorType, Observation, Tool, ToolContext
from agentconsole import rawsql

NO_TERMS = "The query has no searchable words; use a few keywords such as 'stale dashboard cache'."
TOP_N = 5
EXCERPT_CHARS = 300
_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    (  # noqa: SIM905 - a word list reads better as one string
        "a an and are as at be but by can do does for from how i in is it its my not of on or our so that the their "
        "this to was we what when where which why with you your"
    ).split()
)


def _normalise(word: str) -> str:
    # Plurals are the commonest mismatch between a customer's words and a runbook's ("dashboards", "locks").
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _terms(text: str) -> list[str]:
    words = (_normalise(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS)
    return list(dict.fromkeys(words))


@dataclass(frozen=True)
class _Doc:
    source: str  # "runbook" or "workflow"
    slug: str
    title: str
    body: str
    tags: tuple[str, ...]


def _excerpt(body: str, terms: list[str]) -> str:
    lowered = body.lower()
    hits = [i for i in (lowered.find(t) for t in terms) if i >= 0]  # a normalised term is a prefix of its word
    start = max(0, min(hits) - EXCERPT_CHARS // 4) if hits else 0
    text = " ".join(body[start : start + EXCERPT_CHARS].split())
    return ("…" if start else "") + text + ("…" if start + EXCERPT_CHARS < len(body) else "")


def _score(doc: _Doc, terms: list[str]) -> tuple[int, int]:
    """(distinct query terms found anywhere, of those found in the title or tags): higher is better."""
    title_words = set(_terms(" ".join([doc.title, *doc.tags])))
    body_words = set(_terms(doc.body))
    found = [t for t in terms if t in title_words or t in body_words]
    return len(found), sum(1 for t in found if t in title_words)


class SearchRunbooksArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    query: str = Field(min_length=1, max_length=500, description="A few keywords describing the problem.")


# The runbooks (by title), then the enabled workflows (by name): one statement written by hand, where building the two
# querysets it replaces was ~6% of a worker's CPU under bench/throughput.py (py-spy; five searches a ticket). JSON
# columns come back as text on PostgreSQL (Django's loader) and SQLite alike.
_DOCS = (
    "SELECT 0, slug, title, body, '', tags FROM \"agent_runbook\" UNION ALL "
    'SELECT 1, slug, name, description, runbook, match_tags FROM "agent_workflow" WHERE enabled = %s ORDER BY 1, 3'
)


@register
class SearchRunbooks(Tool):
    name = "search_runbooks"
    description = (
        "Search the support runbooks (how-tos for known problems, and the procedures of the ticket workflows) "
        f"by keywords. Returns up to {TOP_N} best matches with their title, slug, tags and an excerpt around "
        "the matching words."
    )
    args_schema = SearchRunbooksArgs
    risk = Risk.READ
    tenant_arg = ""  # bound by the context: the arguments name no tenant

    def summarize(self, args: dict[str, Any], data: Any) -> str:
        results = data.get("results") if isinstance(data, dict) else None
        if not results:
            return f"runbooks matching {args.get('query', '')!r}: none"
        titles = [f"{r.get('title')} ({r.get('slug')})" for r in results if isinstance(r, dict)]
        return clip(f"runbooks matching {args.get('query', '')!r}: " + "; ".join(titles))

    def run(self, args: SearchRunbooksArgs, ctx: ToolContext) -> Observation:
        terms = _terms(args.query)
        if not terms:
            return Observation.failure(ErrorType.INVALID_ARGUMENTS, NO_TERMS)
        docs = [
            _Doc(
                "workflow" if workflow else "runbook",
                slug,
                title,
                f"{text}\n{steps}" if workflow else text,
                tuple(str(t) for t in json.loads(tags) or []),
            )
            for workflow, slug, title, text, steps, tags in rawsql.execute(_DOCS, [True])
        ]
        ranked = sorted(
            ((score, doc) for doc in docs if (score := _score(doc, terms))[0] > 0),
            key=lambda pair: (-pair[0][0], -pair[0][1], pair[1].title.lower()),
        )[:TOP_N]
        return Observation.success(
            {
                "query_terms": terms,
                "results": [
                    {
                        "source": doc.source,
                        "slug": doc.slug,
                        "title": doc.title,
                        "tags": list(doc.tags),
                        "matched_terms": score[0],
                        "excerpt": _excerpt(doc.body, terms),
                    }
                    for score, doc in ranked
                ],
            },
            searched=len(docs),
        )
