"""$(VAR) expansion, table-tested with the cases of Kubernetes' own
third_party/forked/golang/expansion tests, and the kubelet's way of folding env."""

from __future__ import annotations

import pytest

from agent.expansion import container_env, expand, expand_all, mapping_for
from agent.model import EnvVar

CONTEXT = {"VAR_A": "A", "VAR_B": "B", "VAR_C": "C", "VAR_REF": "$(VAR_A)", "VAR_EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(VAR_A)", "A"),
        ("$(VAR_A)-$(VAR_A)", "A-A"),
        ("$(VAR_A)-1", "A-1"),
        ("___$(VAR_B)___", "___B___"),
        ("___$(VAR_C)", "___C"),
        ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
        ("$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
        ("$$(VAR_A)_$$(VAR_B)", "$(VAR_A)_$(VAR_B)"),
        ("f000-$$VAR_A", "f000-$VAR_A"),
        ("foo\\$(VAR_C)bar", "foo\\Cbar"),
        ("foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
        ("foo\\\\\\\\$(VAR_A)bar", "foo\\\\\\\\Abar"),
        ("$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
        ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
        ("$(VAR_REF)", "$(VAR_A)"),
        ("%%$(VAR_REF)--$(VAR_REF)%%", "%%$(VAR_A)--$(VAR_A)%%"),
        ("foo$(VAR_EMPTY)bar", "foobar"),
        ("foo$(VAR_Awhoops!", "foo$(VAR_Awhoops!"),
        ("f00__(VAR_A)__", "f00__(VAR_A)__"),
        ("$?_boo_$!", "$?_boo_$!"),
        ("$VAR_A", "$VAR_A"),
        ("$(VAR_DNE)", "$(VAR_DNE)"),
        ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
        ("$$$$$$(VAR_A)", "$$$(VAR_A)"),
        ("$$$$$$$(GOOD_ODDS)", "$$$$(GOOD_ODDS)"),
        ("$$$$$$$(VAR_A)", "$$$A"),
        ("$VAR_A)", "$VAR_A)"),
        ("${VAR_A}", "${VAR_A}"),
        ("$(VAR_B)_______$(A", "B_______$(A"),
        ("$(VAR_C)_______$(", "C_______$("),
        ("$(VAR_A)foobarzab$", "Afoobarzab$"),
        ("foo-\\$(VAR_A", "foo-\\$(VAR_A"),
        ("--$($($($($--", "--$($($($($--"),
        ("$($($($($--foo$(", "$($($($($--foo$("),
        ("foo0--$($($($(", "foo0--$($($($("),
        ("$(foo$$var)", "$(foo$$var)"),
        ("$()", "$()"),
        ("\n", "\n"),
        ("", ""),
        ("$", "$"),
        ("$$", "$"),
        ("$$$", "$$"),
    ],
)
def test_expand_as_kubernetes(text: str, expected: str) -> None:
    assert expand(text, mapping_for(CONTEXT)) == expected


def test_env_folds_in_order_expanding_plain_values_with_what_came_before() -> None:
    env = container_env(
        [
            EnvVar("HOST", "db.internal", from_source=True),  # envFrom
            EnvVar("URL", "postgres://$(USER)@$(HOST)/app"),  # USER not defined yet
            EnvVar("USER", "app"),
            EnvVar("REF", "$(URL)", from_source=True),  # a ConfigMap value is final
            EnvVar("HOST", "db2"),  # a later definition wins
            EnvVar("COPY", "$(HOST)-$$(HOST)"),
        ]
    )

    assert env == {
        "HOST": "db2",
        "URL": "postgres://$(USER)@db.internal/app",
        "USER": "app",
        "REF": "$(URL)",
        "COPY": "db2-$(HOST)",
    }


def test_command_and_args_expand_with_the_final_environment() -> None:
    env = {"PORT": "8080", "MODE": "prod"}

    assert expand_all(["serve", "--port=$(PORT)", "$(MISSING)", "$$(MODE)"], env) == (
        "serve",
        "--port=8080",
        "$(MISSING)",
        "$(MODE)",
    )
