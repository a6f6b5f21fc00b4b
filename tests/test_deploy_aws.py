"""deploy/aws/agent-console.yaml, the CloudFormation example docs/deploy-aws.md describes: validated by cfn-lint
(CloudFormation's own resource specification), and read for what the docs promise about it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "aws" / "agent-console.yaml"
BIN = Path(sys.executable).parent


def _template() -> dict:
    template, errors = decode(str(TEMPLATE))
    assert not errors, errors
    return template


def _statements(role: dict) -> list[dict]:
    return [s for policy in role["Properties"].get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]


def _actions(statements: list[dict]) -> set[str]:
    actions: set[str] = set()
    for statement in statements:
        action = statement["Action"]
        actions |= {action} if isinstance(action, str) else set(action)
    return actions


def test_it_passes_cfn_lint() -> None:
    done = subprocess.run([str(BIN / "cfn-lint"), str(TEMPLATE)], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, ""), done.stdout + done.stderr


def test_it_gives_the_agent_exactly_one_model_one_log_group_and_the_admin_api() -> None:
    resources = _template()["Resources"]
    statements = _statements(resources["AgentRole"])
    assert _actions(statements) == {"bedrock:InvokeModel", "logs:FilterLogEvents", "execute-api:Invoke"}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        resource = statement["Resource"]
        assert resource != "*" and not isinstance(resource, list), statement
    model = [s for s in statements if s["Resource"] != "*" and "foundation-model" in str(s["Resource"])]
    assert model and all("bedrock:InferenceProfileArn" in s["Condition"]["StringEquals"] for s in model)
    logs = next(s for s in statements if s["Action"] == "logs:FilterLogEvents")
    assert "${CompanyLogGroupName}" in logs["Resource"]["Fn::Sub"]
    # Only the worker's task role may become the agent; the worker's own role only consumes its one queue.
    assert resources["AgentRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "AWS": {"Fn::GetAtt": ["WorkerTaskRole", "Arn"]}
    }
    worker = _statements(resources["WorkerTaskRole"])
    assert {a.split(":")[0] for a in _actions(worker)} == {"sqs", "sts"}
    for role in ("WebTaskRole", "SchedulerTaskRole", "WorkerTaskRole"):
        assert not {"bedrock:InvokeModel", "logs:FilterLogEvents"} & _actions(_statements(resources[role]))


def test_it_runs_the_images_commands_with_settings_the_product_reads() -> None:
    resources = _template()["Resources"]
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    settings = (ROOT / "agentconsole" / "settings.py").read_text()
    read = set(re.findall(r'env_(?:str|secret|bool|int|float|list|choice)\(\s*"([A-Z0-9_]+)"', settings))
    for name in ("web", "worker", "scheduler"):
        [container] = resources[f"{name.title()}TaskDefinition"]["Properties"]["ContainerDefinitions"]
        assert list(container["Command"]) == compose[name]["command"], name
        names = {e["Name"] for e in container["Environment"]} | {s["Name"] for s in container["Secrets"]}
        assert names <= read, (name, names - read)


def test_it_scales_the_workers_on_the_queues_backlog_and_never_runs_two_schedulers() -> None:
    resources = _template()["Resources"]
    metrics = resources["WorkerBacklogScaling"]["Properties"]["TargetTrackingScalingPolicyConfiguration"][
        "CustomizedMetricSpecification"
    ]["Metrics"]
    assert {m.get("MetricStat", {}).get("Metric", {}).get("MetricName") for m in metrics} >= {
        "ApproximateNumberOfMessagesVisible",
        "RunningTaskCount",
    }
    scheduler = resources["SchedulerService"]["Properties"]
    assert (scheduler["DesiredCount"], scheduler["DeploymentConfiguration"]["MaximumPercent"]) == (1, 100)
    assert resources["WebTargetGroup"]["Properties"]["HealthCheckPath"] == "/healthz"
