from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import resolve

from console.views import sidebar as views

ROOT = Path(__file__).resolve().parents[3]


def test_it_ships_a_signed_url_ticket_sidebar_app() -> None:
    manifest = json.loads((ROOT / "zendesk_app" / "manifest.json").read_text())
    assert (manifest["signedUrls"], manifest["private"], manifest["frameworkVersion"]) == (True, True, "2.0")
    sidebar = manifest["location"]["support"]["ticket_sidebar"]
    assert resolve(sidebar["url"].removeprefix("https://console.example.com")).func is views.zendesk_sidebar
    english = json.loads((ROOT / "zendesk_app" / "translations" / "en.json").read_text())
    assert english["app"]["name"] == manifest["name"]
    for logo in ("logo.png", "logo-small.png"):
        assert (ROOT / "zendesk_app" / "assets" / logo).read_bytes().startswith(b"\x89PNG")


def test_it_packages_the_app_with_this_consoles_address(tmp_path) -> None:
    output = tmp_path / "app.zip"
    call_command("zendesk_app_package", console_url="https://console.acme.io/", output=str(output))

    with zipfile.ZipFile(output) as archive:
        names = sorted(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
    assert names == ["assets/logo-small.png", "assets/logo.png", "manifest.json", "translations/en.json"]
    assert manifest["location"]["support"]["ticket_sidebar"]["url"] == "https://console.acme.io/zendesk/sidebar/"
    assert manifest["signedUrls"] is True


@pytest.mark.parametrize("url", ["http://console.acme.io", "console.acme.io", "ftp://x"])
def test_it_refuses_an_address_zendesk_would_not_frame(url, tmp_path) -> None:
    with pytest.raises(CommandError, match="must be an https:// address"):
        call_command("zendesk_app_package", console_url=url, output=str(tmp_path / "a.zip"))
