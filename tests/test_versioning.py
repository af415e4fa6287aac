"""Versions: what the code computes, not how it is written."""

from __future__ import annotations

import textwrap

from memostore import NewArgDefault
from memostore.canonical import canonical_code
from memostore.versioning import function_source, version_id


def version_of(source: str, new_arg_defaults=None) -> str:
    namespace: dict = {"NewArgDefault": NewArgDefault}
    exec(textwrap.dedent(source), namespace)
    func = next(v for k, v in namespace.items() if k.startswith("train"))
    return version_id(func, new_arg_defaults, source=textwrap.dedent(source))


ORIGINAL = """
def train_model(X_train, y_train):
    model = Forest(n_estimators=1)
    return model.fit(X_train, y_train)
"""


def test_comments_docstrings_formatting_and_annotations_do_not_count():
    cosmetic = '''
    def train_model(X_train: list, y_train) -> object:
        """Fit one tree."""
        # a comment
        model = Forest(
            n_estimators=1,
        )
        return model.fit(X_train,y_train)
    '''
    assert version_of(cosmetic) == version_of(ORIGINAL)


def test_a_logic_change_is_a_new_version():
    changed = ORIGINAL.replace("n_estimators=1", "n_estimators=2")
    assert version_of(changed) != version_of(ORIGINAL)


def test_new_arg_default_that_reproduces_the_old_code_keeps_the_version():
    grown = """
    def train_model(X_train, y_train, n_estimators=NewArgDefault(1)):
        model = Forest(n_estimators=n_estimators)
        return model.fit(X_train, y_train)
    """
    assert version_of(grown, {"n_estimators": 1}) == version_of(ORIGINAL)


def test_new_keyword_only_arg_default_keeps_the_version():
    grown = """
    def train_model(X_train, y_train, *, n_estimators=NewArgDefault(1)):
        model = Forest(n_estimators=n_estimators)
        return model.fit(X_train, y_train)
    """
    assert version_of(grown, {"n_estimators": 1}) == version_of(ORIGINAL)


def test_new_arg_with_other_default_is_a_new_version():
    grown = """
    def train_model(X_train, y_train, n_estimators=NewArgDefault(5)):
        model = Forest(n_estimators=n_estimators)
        return model.fit(X_train, y_train)
    """
    assert version_of(grown, {"n_estimators": 5}) != version_of(ORIGINAL)


def test_salt_separates_versions():
    def f(x):
        return x

    assert version_id(f, salt="a") != version_id(f, salt="b")


def test_nested_docstrings_do_not_count():
    with_doc = '''
    def outer(x):
        def inner(y):
            """Inner docs."""
            return y
        return inner(x)
    '''
    without = """
    def outer(x):
        def inner(y):
            return y
        return inner(x)
    """
    assert canonical_code(textwrap.dedent(with_doc)) == canonical_code(textwrap.dedent(without))


def test_bytecode_fallback_when_no_source_exists():
    namespace: dict = {}
    exec("def made(x):\n    return x * 2\n", namespace)
    other: dict = {}
    exec("def made(x):\n    return x * 3\n", other)
    assert function_source(namespace["made"]) is None
    first = version_id(namespace["made"])
    assert first == version_id(namespace["made"])
    assert first != version_id(other["made"])
