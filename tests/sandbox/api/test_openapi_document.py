"""The sandbox as a configured company: the document in the repository is the one it serves, and connecting it
through the product's public commands gives the tools the demo's workflows name."""

from __future__ import annotations

import json

import pytest

from agent.catalogue import all_tools
from agent.models import ApiOperation, ToolContract
from sandbox.admin_api import api
from sandbox.company import OPENAPI_DOCUMENT, sandbox_connect


def test_it_keeps_the_document_in_the_repository_equal_to_the_one_it_serves() -> None:
    assert json.loads(OPENAPI_DOCUMENT.read_text()) == json.loads(json.dumps(api.get_openapi_schema()))


@pytest.mark.django_db
def test_it_connects_the_sandbox_by_its_files_only() -> None:
    ApiOperation.objects.all().delete()
    ToolContract.objects.all().delete()

    printed = sandbox_connect()
    again = sandbox_connect()

    assert "+ reset_tenant_cache v1 (new)" in printed
    assert "= reset_tenant_cache v1 (unchanged)" in again
    names = {"reset_tenant_cache", "extend_trial", "unlock_user", "apply_config_patch", "get_billing_status"}
    assert names <= set(all_tools())
    assert all_tools()["extend_trial"].spec()["input_schema"]["properties"]["days"]["maximum"] == 30
