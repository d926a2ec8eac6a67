"""P/D's two checks as verdicts (harness/deploy/checks.py): only the platform's one known symptom is not shown;
every other way of showing no transfer fails; equal answers with no KV moved show nothing."""

from __future__ import annotations

from harness.deploy.checks import kv_transfer_verdict, same_answers_verdict

KNOWN = "vLLM's CPU build 0.32 loads no KV from a connector"


def test_kv_that_arrived_passes_anywhere() -> None:
    assert kv_transfer_verdict(0, 768.0, 512.0, KNOWN).outcome == "pass"
    assert kv_transfer_verdict(0, 768.0, 512.0, None).outcome == "pass"


def test_only_the_known_symptom_is_not_shown() -> None:
    verdict = kv_transfer_verdict(0, 768.0, 0.0, KNOWN)
    assert verdict.outcome == "not_shown"
    assert KNOWN in verdict.message
    assert "768 tokens queried, 0 got" in verdict.message


def test_every_other_absence_of_transfer_fails() -> None:
    failed_requests = kv_transfer_verdict(2, 768.0, 0.0, KNOWN)
    assert failed_requests.failed, "a broken proxy is no known symptom"
    assert "2 request(s)" in failed_requests.message
    no_connector = kv_transfer_verdict(0, 0.0, 0.0, KNOWN)
    assert no_connector.failed
    assert "kv-transfer-config" in no_connector.message
    on_hardware = kv_transfer_verdict(0, 768.0, 0.0, None)
    assert on_hardware.failed
    assert "recomputed" in on_hardware.message


def test_same_answers_show_the_transfer_only_when_kv_moved() -> None:
    assert same_answers_verdict(8, 0, 768.0).outcome == "pass"
    recomputed = same_answers_verdict(8, 0, 0.0)
    assert recomputed.outcome == "not_shown"
    assert "no KV was transferred" in recomputed.message
    assert same_answers_verdict(8, 3, 768.0).failed
    assert same_answers_verdict(8, 3, 0.0).failed, "different answers fail whatever moved"
