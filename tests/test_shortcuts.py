"""bench.shortcuts finds the words the training data has under one side only (pure functions)."""

from __future__ import annotations

from bench.shortcuts import Shortcut, main, never_inside, ngram_counts, ngrams, one_sided

EXAMPLES = [
    ("opt_out", "cómo hago para no recibir promos"),
    ("opt_out", "Cómo hago para que paren"),
    ("opt_out", "no more promos"),
    ("want_marketing", "more promos please"),
    ("order_help", "how do I return this"),
    ("order_help", "how do I track it"),
]


def test_ngrams_are_lower_cased_words_and_bigrams():
    assert ngrams("Cómo HAGO, ya") == {"cómo", "hago", "ya", "cómo hago", "hago ya"}


def test_one_sided_lists_ngrams_found_only_under_the_intent():
    found = one_sided(ngram_counts(EXAMPLES, "opt_out"), min_count=2)
    # "promos" is in 3 opt-outs and 1 other: more than a tenth, so not a shortcut.
    assert found == [
        Shortcut("cómo", 2, 0),
        Shortcut("cómo hago", 2, 0),
        Shortcut("hago", 2, 0),
        Shortcut("hago para", 2, 0),
        Shortcut("no", 2, 0),
        Shortcut("para", 2, 0),
    ]


def test_one_sided_allows_a_tenth_on_the_other_side():
    examples = [("opt_out", "stop promos")] * 10 + [("ask_offers", "promos today?")]
    assert Shortcut("promos", 10, 1) in one_sided(ngram_counts(examples, "opt_out"))
    assert Shortcut("promos", 10, 2) not in one_sided(
        ngram_counts([*examples, ("complaint", "promos broke")], "opt_out")
    )


def test_never_inside_lists_what_the_intent_never_contains():
    away = never_inside(ngram_counts(EXAMPLES, "opt_out"), min_count=2)
    assert [s.ngram for s in away] == ["do", "do i", "how", "how do", "i"]
    assert all(s.inside == 0 and s.outside == 2 for s in away)


def test_the_command_prints_both_lists(tmp_path, capsys):
    data = tmp_path / "nlu.yml"
    data.write_text(
        'version: "3.1"\nnlu:\n- intent: opt_out\n  examples: |\n    - cómo hago para salir\n'
        "    - cómo hago para parar\n- intent: order_help\n  examples: |\n    - how do I pay\n    - how do I return\n"
    )
    main(["--data", str(data), "--min-count", "2", "--top", "3"])
    out = capsys.readouterr().out
    assert "n-grams (almost) only in opt_out examples" in out
    assert "      2    0  cómo" in out
    assert "      2  how" in out
