"""The tool catalogue the agent works with: the product's own tools (agent/tools/) and the company's contract tools
(agent/company/), a built-in name always winning. It sits above both, so neither imports the other."""

from __future__ import annotations

from agent.company.selectors import contract_tools
from agent.tools import builtin_tools
from agent.tools.base import Tool

UNKNOWN_TOOL = "There is no tool named {name!r}."


def all_tools() -> dict[str, Tool]:
    """The product's tools and the company's contract tools (a built-in name always wins)."""
    builtin = builtin_tools()
    return {**builtin, **{name: tool for name, tool in contract_tools().items() if name not in builtin}}


def get_tool(name: str) -> Tool | None:
    builtin = builtin_tools().get(name)
    if builtin is not None:
        return builtin
    return contract_tools().get(name)


NOT_IN_CATALOGUE = "Unknown tool(s) {names}: the catalogue has {known}."


def tools_limited_to(names: object) -> dict[str, Tool]:
    """The catalogue's tools among these names, or every tool when none is named."""
    tools = all_tools()
    wanted = {name for name in names or [] if isinstance(name, str)} if isinstance(names, list | set) else set()
    if not wanted:
        return tools
    return {name: tool for name, tool in tools.items() if name in wanted}


def workflow_tools(workflow: object | None) -> dict[str, Tool]:
    """The tools a workflow's model sees: the workflow's own list (Workflow.tools), or every tool when it names
    none. Calls to any other tool are refused where they are decided, as calls to a tool that does not exist."""
    return tools_limited_to(list(getattr(workflow, "tools", None) or []))


def tool_names_errors(names: object) -> list[str]:
    """What is wrong with a workflow's tool list: not a list of names, or names the catalogue does not have."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return ["The tools are a list of tool names."]
    known = all_tools()
    unknown = [n for n in names if n not in known]
    if unknown:
        return [NOT_IN_CATALOGUE.format(names=", ".join(unknown), known=", ".join(sorted(known)))]
    return []
