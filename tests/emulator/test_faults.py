"""The fault settings and their draws, without HTTP."""

import pytest

from emulator.config import EmulatorConfig
from emulator.errors import InvalidRequest
from emulator.faults import FIELD_NAMES, FaultInjector, Faults

DECISIONS = {
    "webhook_drop": "drop_webhook",
    "webhook_duplicate": "duplicate_webhook",
    "webhook_reorder": "reorder_webhook",
    "submit_429": "refuse_submit",
    "submit_500": "fail_submit",
    "submit_500_after_create": "fail_after_create",
    "get_result_500": "fail_get_result",
    "delivery_fail": "fail_delivery",
    "delivery_truncate": "truncate_delivery",
    "expire_tasks": "expire_task",
}


def draws(injector: FaultInjector, decision: str, count: int = 50) -> list[bool]:
    return [getattr(injector, decision)() for _ in range(count)]


def test_all_faults_are_off_by_default() -> None:
    injector = FaultInjector(Faults())

    assert not any(any(draws(injector, decision)) for decision in DECISIONS.values())
    assert injector.webhook_delay_s() == injector.get_result_delay_s() == 0.0


@pytest.mark.parametrize(("name", "decision"), DECISIONS.items())
def test_probability_one_always_and_zero_never(name: str, decision: str) -> None:
    assert all(draws(FaultInjector(Faults(**{name: 1.0})), decision))
    assert not any(draws(FaultInjector(Faults(**{name: 0.0})), decision))


def test_delays_apply_with_their_probability() -> None:
    always = FaultInjector(
        Faults(
            webhook_delay_s=2.5,
            webhook_delay_probability=1,
            get_result_slow_s=4,
            get_result_slow_probability=1,
        )
    )
    never = FaultInjector(Faults(webhook_delay_s=2.5, get_result_slow_s=4))

    assert (always.webhook_delay_s(), always.get_result_delay_s()) == (2.5, 4.0)
    assert (never.webhook_delay_s(), never.get_result_delay_s()) == (0.0, 0.0)


def test_a_seed_repeats_a_mixed_sequence() -> None:
    faults = Faults(webhook_drop=0.5, submit_500=0.3, seed=7)

    first = draws(FaultInjector(faults), "drop_webhook")
    second = draws(FaultInjector(faults), "drop_webhook")

    assert first == second
    assert True in first and False in first
    assert first != draws(FaultInjector(Faults(webhook_drop=0.5, seed=8)), "drop_webhook")


def test_each_kind_draws_on_its_own() -> None:
    faults = Faults(webhook_drop=0.5, submit_500=0.5, seed=3)
    alone = FaultInjector(faults)
    interleaved = FaultInjector(faults)

    expected = draws(alone, "drop_webhook", 20)
    observed = []
    for _ in range(20):
        interleaved.fail_submit()
        observed.append(interleaved.drop_webhook())

    assert observed == expected


def test_updating_the_seed_restarts_the_draws() -> None:
    injector = FaultInjector(Faults(submit_429=0.5, seed=11))
    first = draws(injector, "refuse_submit")

    injector.update({"seed": 11})

    assert draws(injector, "refuse_submit") == first


def test_an_update_changes_only_what_it_names() -> None:
    injector = FaultInjector(Faults(webhook_drop=0.25, seed=1))

    updated = injector.update({"submit_500": 1, "webhook_delay_s": 3})

    assert updated == injector.faults
    assert updated == Faults(webhook_drop=0.25, submit_500=1.0, webhook_delay_s=3.0, seed=1)


def test_an_invalid_update_lists_every_problem_and_changes_nothing() -> None:
    injector = FaultInjector(Faults(webhook_drop=0.25))
    changes = {
        "webhook_drop": 1.5,
        "webhook_delay_s": -1,
        "submit_500": "often",
        "seed": 1.5,
        "typo": 1,
        "delivery_fail": True,
    }

    with pytest.raises(InvalidRequest) as raised:
        injector.update(changes)

    assert {issue.loc[1] for issue in raised.value.issues} == set(changes)
    assert injector.faults == Faults(webhook_drop=0.25)


def test_constructing_out_of_range_faults_is_refused() -> None:
    with pytest.raises(ValueError, match="webhook_drop"):
        Faults(webhook_drop=2)


def test_read_from_the_environment() -> None:
    environ = {f"FILLPIPE_EMULATOR_FAULT_{name.upper()}": "0.5" for name in FIELD_NAMES}
    environ |= {"FILLPIPE_EMULATOR_FAULT_SEED": "42", "FILLPIPE_EMULATOR_FAULT_SUBMIT_500": "1"}

    faults = EmulatorConfig.from_environ(environ).faults

    assert faults.seed == 42
    assert faults.submit_500 == 1.0
    assert faults.webhook_drop == faults.webhook_delay_s == 0.5
    assert EmulatorConfig.from_environ({}).faults == Faults()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FILLPIPE_EMULATOR_FAULT_WEBHOOK_DROP", "sometimes", "FAULT_WEBHOOK_DROP must be"),
        ("FILLPIPE_EMULATOR_FAULT_SEED", "x", "FAULT_SEED must be an integer"),
        ("FILLPIPE_EMULATOR_FAULT_SUBMIT_429", "1.5", "submit_429 must be a probability"),
    ],
)
def test_malformed_variables_are_named(variable: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EmulatorConfig.from_environ({variable: value})


def test_moderation_words_are_read_from_the_environment() -> None:
    config = EmulatorConfig.from_environ(
        {
            "FILLPIPE_EMULATOR_MODERATION_WORDS": "gore, Nudity",
            "FILLPIPE_EMULATOR_CONTENT_MODERATION_WORD": "forbidden",
        }
    )

    assert config.moderation_words == ("gore", "Nudity")
    assert config.content_moderation_word == "forbidden"
