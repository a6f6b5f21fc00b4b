"""The product's settings with bench/_bench_urls.py as the URLconf (its anchor views beside the product's)."""

from agentconsole.settings import *  # noqa: F403

ROOT_URLCONF = "_bench_urls"
