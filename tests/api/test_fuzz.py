"""A bounded schemathesis run against ``/openapi.json``: every operation, a valid API key,
generated requests checked for server errors and against the documented statuses, content
types and response schemas (issue 16, "keep it closed"). ``CALSYNC_FUZZ_EXAMPLES`` raises
the number of cases per operation for a longer run."""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from calsync.api.app import create_app
from calsync.service.runtime import Runtime
from tests.conftest import new_key

EXAMPLES = int(os.environ.get("CALSYNC_FUZZ_EXAMPLES", "20"))


def test_every_operation_holds_to_its_document(runtime: Runtime) -> None:
    # The fuzzer is one client sending many bad keys on purpose: its failures must not
    # block it (tests/api/test_guard.py checks the limits themselves).
    runtime.settings.auth_failures_per_minute = 1_000_000
    key = new_key(runtime)
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(runtime, worker=False))
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: schemathesis.Case) -> None:
            # Not positive_data_acceptance: the document cannot say every rule a valid request
            # keeps (a body id that must echo the path's, from < to); those are 400s.
            case.call_and_validate(
                headers={"Authorization": key}, excluded_checks=[positive_data_acceptance]
            )

        try:
            run()
        except BaseException as exc:  # collected (hypothesis raises groups), reported together
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures[operation.label] = str(exc)[:1500]
    assert operations >= 28
    assert failures == {}, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
