"""What the fuzz test and ``benchmarks/fuzz.py`` share: a served shop to fuzz, the checks.

The target is an SDK on a fresh database (SQLite in a temporary folder, or a throwaway
PostgreSQL database) holding a small trained shop, so that the read endpoints answer
from a model, behind the app that serves it with an API key. The fuzzer is schemathesis
reading the app's own OpenAPI document: whatever the document promises is what a
generated client, and so the fuzzer, will send.

Random ids rarely name anything that exists, so requests would mostly stop at "unknown
category" or "unknown request". :func:`steer_to_known_ids` registers schemathesis hooks
that make about half the requests name the shop's real users, items, categories,
served lists and model runs instead, so fuzzed values reach storage, training and the
plugins: feedback on a served list, attributes of an item the filters read, events of a
user who is then served. The same hooks put into paths and query strings the text
schemathesis never generates there (NUL, invalid UTF-8, over-long ids).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import schemathesis
from flask import Flask
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from recsdk import RecSDK
from recsdk.api import create_app
from tests.api.helpers import generated_events
from tests.postgres import fresh_postgres_database

API_KEY = "fuzz-key"
AUTHENTICATED = {"X-API-Key": API_KEY}
#: Headers that carry a key (schemathesis generates random ones from the security schemes).
AUTH_HEADERS = frozenset({"x-api-key", "authorization"})
DATABASES = ("sqlite", "postgresql")
#: Where benchmarks/fuzz.py hands the known ids to the hooks of the command line.
KNOWN_IDS_VARIABLE = "RECSDK_FUZZ_KNOWN_IDS"
#: Every plugin that ships, so fuzzed catalogue data reaches each one's training and
#: scoring; time budgets are wide so that a slow shared machine does not degrade lists.
FUZZ_CONFIG: dict[str, Any] = {
    "device": "cpu",
    "api": {"api_key": API_KEY},
    "plugins": {name: {"timeout_ms": 10_000} for name in (
        "popularity", "category_popularity", "trending", "interest", "content", "filters")},
}
#: Why a plugin may leave a list short without being at fault: time, or capacity.
_NOT_A_PLUGIN_ERROR = re.compile(r"timed out after|skipped: saturated")


@schemathesis.check
def lists_are_not_degraded_by_plugin_errors(ctx: CheckContext, response: Response,
                                            case: Case) -> bool | None:
    """A served list must not be degraded because a plugin raised on the stored data.

    One item's odd attributes once made the filters raise for every request (issue 8);
    the answer was 200 but degraded, which no status check sees.
    """
    if response.status_code != 200 or "degraded" not in response.text:
        return None
    body = response.json()
    if not isinstance(body, dict) or not body.get("degraded"):
        return True
    errors = [f for f in body.get("failures", []) if not _NOT_A_PLUGIN_ERROR.search(f)]
    if errors:
        raise AssertionError(f"Served list degraded by plugin errors: {errors}")
    return True


#: What every answer must satisfy: no 5xx; the status, content type, headers and body
#: the document declares for the operation; no list degraded by a plugin error.
#: (Whether the server accepts every request the document allows is not checked: some
#: need data that exists, a known category or request_id, which no schema can say.)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance,
          lists_are_not_degraded_by_plugin_errors]


@dataclass(frozen=True)
class KnownIds:
    """Ids that exist in the seeded shop, for :func:`steer_to_known_ids`."""

    users: tuple[str, ...]
    items: tuple[str, ...]
    categories: tuple[str, ...]
    requests: tuple[str, ...]
    runs: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> KnownIds:
        return cls(**{k: tuple(v) for k, v in json.loads(text).items()})


@dataclass(frozen=True)
class Target:
    """A served shop: its SDK, its app, the app's OpenAPI document loaded for fuzzing,
    and the ids that exist in it."""

    database: str
    sdk: RecSDK
    app: Flask
    schema: Any  # schemathesis' OpenApiSchema
    known: KnownIds


def seed_shop(sdk: RecSDK) -> KnownIds:
    """A small shop (categories, items, users, events), a model trained on it and a few
    served lists; returns the ids that exist."""
    categories = ("root", "shoes", "boots")
    sdk.upsert_categories([{"id": "root", "name": "Root"},
                           {"id": "shoes", "name": "Shoes", "parent_id": "root"},
                           {"id": "boots", "name": "Boots", "parent_id": "shoes"}])
    items = tuple(f"sku-{n}" for n in range(30))
    sdk.upsert_items([{"id": item, "title": f"Item {n} leather", "price": 10.0 + n,
                       "category_id": categories[n % 3], "stock": n, "tags": [f"t{n % 4}"],
                       "attributes": {"group_id": f"g{n // 3}"}}
                      for n, item in enumerate(items)])
    users = tuple(f"user-{u}" for u in range(40))
    sdk.upsert_users([{"id": user, "attributes": {"tier": u % 3}}
                      for u, user in enumerate(users)])
    sdk.track_many(generated_events(n_users=len(users), n_items=len(items), seed=8))
    run = sdk.fit().run_id
    served = tuple(sdk.recommend(user, k=5).request_id for user in users[:5])
    sdk.request_log.flush()
    return KnownIds(users, items, categories, served, (run,))


@contextmanager
def fuzz_target(database: str) -> Iterator[Target]:
    """A trained shop on a fresh ``database`` (sqlite or postgresql), served with a key."""
    with ExitStack() as stack:
        if database == "sqlite":
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="recsdk-fuzz-"))
            url = f"sqlite:///{Path(folder) / 'fuzz.db'}"
        elif database == "postgresql":
            url = stack.enter_context(fresh_postgres_database("recsdk_fuzz"))
        else:
            raise ValueError(f"database must be one of {DATABASES}, not {database!r}")
        sdk = RecSDK({"database_url": url, **FUZZ_CONFIG}, environ={})
        stack.callback(sdk.close)
        known = seed_shop(sdk)
        app = create_app(sdk)
        schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
        steer_to_known_ids(schema.hook, known)
        yield Target(database, sdk, app, schema, known)


def _naming(choices: Mapping[str, Sequence[str]]) -> Callable[[Any, Any], Any]:
    """A flatmap hook: the generated value as it is, or with the fields in ``choices``
    that it has (in an object, or in each object of an array) set to existing ids."""
    def flatmap(_context: Any, value: Any) -> st.SearchStrategy[Any]:
        rows = value if isinstance(value, list) else [value]
        if not rows or not all(isinstance(row, dict) for row in rows):
            return st.just(value)
        picks = st.fixed_dictionaries({k: st.sampled_from(v) for k, v in choices.items()})

        def named(chosen: list[dict[str, str]]) -> Any:
            out = [{**row, **{k: v for k, v in pick.items() if k in row}}
                   for row, pick in zip(rows, chosen, strict=True)]
            return out if isinstance(value, list) else out[0]
        return st.one_of(st.just(value), st.lists(picks, min_size=len(rows),
                                                  max_size=len(rows)).map(named))
    return flatmap


#: Text that schemathesis never puts in a path (already percent-encoded, as path
#: parameters are when hooks see them): NUL, a surrogate's UTF-8 bytes, invalid UTF-8,
#: over-long, an encoded slash and dots.
HOSTILE_PATH_TEXT = ("a%00b", "%ED%A0%80abcdef", "%FF%FEabcdef", "x" * 300, "..%2F..%2Fetc",
                     "%00")
#: The same for query values (raw: the client encodes them).
HOSTILE_QUERY_TEXT = ("a\x00b", "\x00", "u" * 256, "\uffff", " ")


def steer_to_known_ids(register: Callable[[str], Any], known: KnownIds) -> None:
    """Register the hooks that make about half the requests name existing things
    (or, for path and query values, text that schemathesis leaves out).

    ``register`` is ``schema.hook`` (one schema, in-process) or ``schemathesis.hook``
    (every schema, as the command line loads hooks).
    """
    users, items = known.users + HOSTILE_QUERY_TEXT, known.items + HOSTILE_PATH_TEXT
    steering = [
        ("flatmap_body", "POST", "/api/v1/events", {"user_id": known.users,
                                                    "item_id": known.items}),
        ("flatmap_body", "POST", "/api/v1/feedback", {"request_id": known.requests,
                                                      "item_id": known.items}),
        ("flatmap_body", "PUT", "/api/v1/items", {"id": known.items,
                                                  "category_id": known.categories}),
        ("flatmap_body", "PUT", "/api/v1/users", {"id": known.users}),
        ("flatmap_body", "PUT", "/api/v1/categories", {"id": known.categories,
                                                       "parent_id": known.categories}),
        ("flatmap_query", "GET", "/api/v1/recommendations", {
            "user_id": users, "session_id": HOSTILE_QUERY_TEXT,
            "placement": ("default", *HOSTILE_QUERY_TEXT)}),
        ("flatmap_path_parameters", "GET", "/api/v1/items/{item_id}/similar",
         {"item_id": items}),
        ("flatmap_path_parameters", "POST", "/api/v1/admin/models/{run_id}/activate",
         {"run_id": known.runs + HOSTILE_PATH_TEXT}),
        ("flatmap_path_parameters", "GET", "/api/v1/admin/jobs/{job_id}",
         {"job_id": HOSTILE_PATH_TEXT}),
    ]
    for hook, method, path, choices in steering:
        register(hook).apply_to(method=method, path=path)(_naming(choices))


def unauthenticated(case: Case) -> Case:
    """The same request without any key header."""
    headers = CaseInsensitiveDict({k: v for k, v in (case.headers or {}).items()
                                   if k.lower() not in AUTH_HEADERS})
    return case.derive(headers=headers)


def call_both_ways(case: Case) -> list[Response]:
    """Send ``case`` with the API key and without one; every answer passes :data:`CHECKS`.

    Raises schemathesis' failure (naming the check and a curl command to reproduce)
    on the first answer that does not.
    """
    with_key = case.call_and_validate(headers=AUTHENTICATED, checks=CHECKS)
    without_key = unauthenticated(case).call_and_validate(checks=CHECKS)
    return [with_key, without_key]
