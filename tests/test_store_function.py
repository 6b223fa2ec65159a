"""PostgreSQL: the server-side function that stores callback batches is the one the
intake's rules build, as the newest migration made it."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from receiver.store.postgresql import STORE_FUNCTION, function_body
from tests.conftest import TEST_DATABASE_URL

pytestmark = pytest.mark.skipif(not TEST_DATABASE_URL, reason="PostgreSQL function")


@pytest.fixture
def backend() -> str:
    return "postgresql"


def test_the_migrated_function_is_the_one_the_rules_build(engine: Engine) -> None:
    # A change of the rules (receiver.store) needs a migration that replaces the
    # function with the new body: the database runs what migrations made.
    with engine.connect() as conn:
        source, config = conn.execute(
            text(
                "SELECT prosrc, proconfig FROM pg_proc"
                " WHERE proname = :name AND pronamespace = CAST(current_schema() AS regnamespace)"
            ),
            {"name": STORE_FUNCTION},
        ).one()
    assert source == function_body()
    assert config == ["plan_cache_mode=force_generic_plan"]
