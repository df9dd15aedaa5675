"""The prompt's output checks."""

from __future__ import annotations

import pytest

from mlstack.prompt_engineering.checks import check_answer

GOOD = (
    "Use DataFrame.drop_duplicates() to remove repeated rows, e.g. df.drop_duplicates(subset=['id']).\n\n"
    "Further reading:\n"
    "- https://pandas.pydata.org/docs/reference/api/pandas.DataFrame.drop_duplicates.html\n"
    "- [Duplicate labels](https://pandas.pydata.org/docs/user_guide/duplicates.html)"
)


def test_an_answer_that_follows_the_rules_passes() -> None:
    checks = check_answer(GOOD)
    assert checks.sentences == 1 and checks.passed, checks.failures()
    assert checks.links == [
        "https://pandas.pydata.org/docs/reference/api/pandas.DataFrame.drop_duplicates.html",
        "https://pandas.pydata.org/docs/user_guide/duplicates.html",
    ]
    inline = "See [the guide](https://pandas.pydata.org/docs/) and https://numpy.org/doc/. That is all."
    assert check_answer(inline).sentences == 2 and check_answer(inline).links_ok


@pytest.mark.parametrize(
    ("answer", "sentences", "links", "well_formed", "failure"),
    [
        ("One. Two. Three. https://a.org https://b.org", 3, 2, True, "3 sentences, wanted 1 to 2"),
        ("Use drop_duplicates. See https://pandas.pydata.org.", 2, 1, True, "1 links, wanted 2"),
        ("Use it. https://pandas.pydata.org https://a.org https://b.org", 1, 3, True, "3 links"),
        ("Use it! htp://pandas.pydata.org https://ok.org", 1, 2, False, "not well-formed: htp://"),
        ("Use it? https://no_tld https://ok.org", 1, 2, False, "not well-formed: https://no_tld"),
        ("Use it. www.pandas.pydata.org https://ok.org", 1, 2, False, "www.pandas.pydata.org"),
        ("Just words without any links", 1, 0, False, "no links at all"),
        ("https://a.org https://b.org", 0, 2, True, "0 sentences"),
    ],
)
def test_each_rule_is_checked(
    answer: str, sentences: int, links: int, well_formed: bool, failure: str
) -> None:
    checks = check_answer(answer)
    assert (checks.sentences, len(checks.links), checks.links_well_formed) == (sentences, links, well_formed)
    assert not checks.passed and any(failure in f for f in checks.failures()), checks.failures()
