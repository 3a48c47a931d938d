"""The OpenAPI description names each schema by its class name: two apps' schemas of the same name
would share one entry, and clients (and the contract tests) would read one app's answers against
the other's shape."""

from __future__ import annotations

import importlib
import pkgutil
from collections import defaultdict

from ninja import Schema

import yilian


def test_no_two_api_schemas_share_a_name() -> None:
    owners: dict[str, set[str]] = defaultdict(set)
    for info in pkgutil.walk_packages(yilian.__path__, "yilian."):
        if not info.name.endswith("schemas") or ".tests" in info.name:
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if name == "In":
                continue  # the request bodies' base class, never a body or an answer itself
            if isinstance(value, type) and issubclass(value, Schema) and value.__module__ == module.__name__:
                owners[name].add(module.__name__)
    shared = {name: sorted(modules) for name, modules in owners.items() if len(modules) > 1}
    assert shared == {}
