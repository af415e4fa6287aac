"""Versions: what the code computes, not how it is written."""

from __future__ import annotations

import sys
import textwrap

from hypothesis import given
from hypothesis import strategies as st

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


def test_a_field_a_new_python_adds_empty_changes_nothing():
    import ast

    from memostore.canonical import normalized_definition, write

    definition = normalized_definition("def f(x):\n    return [v for v in x]\n", {})
    written = write(definition)
    definition.type_params = []  # what Python 3.12 adds to every def
    definition.args.future_field = None
    assert write(definition) == written
    del definition.type_params  # what Python 3.10 and 3.11 have
    assert write(definition) == written

    class FutureStatement(ast.stmt):  # syntax of a later Python: its _fields, empty ones left out
        _fields = ("body", "modifiers")

    assert write(FutureStatement(body=[ast.Pass()], modifiers=[])) == write(FutureStatement(body=[ast.Pass()]))


def test_the_canonical_form_leaves_out_what_differs_between_pythons_only():
    # ctx, the u prefix, and the empty string parts Python 3.12.0-3.12.1 add to some format specs.
    assert canonical_code('def f(x): return u"a" + x') == canonical_code('def f(x): return "a" + x')
    joined = canonical_code('def f(x, w): return f"{x:>{w}}" f"" "b"')
    assert joined == canonical_code('def f(x, w): return f"{x:>{w}}b"')
    assert "ctx" not in canonical_code("def f(x):\n    y = x\n    del y\n")


def test_own_decorators_do_not_count_nested_ones_do():
    plain = "def f(x):\n    class A:\n        def g(self): return x\n    return A\n"
    decorated = "@op(output_names=['a'])\n" + plain
    nested = plain.replace("        def g", "        @staticmethod\n        def g")
    assert canonical_code(decorated) == canonical_code(plain)
    assert canonical_code(nested) != canonical_code(plain)


def test_code_without_source_records_which_python_compiled_it(tmp_path):
    from memostore import Storage, op

    namespace: dict = {}
    exec("def made(x):\n    return x * 2\n", namespace)
    storage = Storage(db_path=tmp_path / "made.db")
    with storage:
        op(namespace["made"])(3)
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    # What storage.diff and storage.explain show for its source.
    [row] = storage.reader.op_version_rows("made")
    assert row["source"] == f"# source not available: hashed from its bytecode under Python {python}\n"


def test_the_canonical_form_survives_rewriting_the_source():
    # ast.unparse rewrites quotes, parentheses, f-string parts and spacing: none of it counts.
    import ast

    import version_sample

    for op_ in version_sample.OPS:
        rewritten = ast.unparse(ast.parse(op_.source))
        assert canonical_code(rewritten, op_.new_arg_defaults) == canonical_code(op_.source, op_.new_arg_defaults)


@given(st.text(), st.integers(-10**15, 10**15), st.floats(allow_nan=False))
def test_constants_keep_their_type_and_value_in_the_canonical_form(text, number, real):
    import ast

    def source(text, number, real):
        return f"def f(x):\n    return f'{{x!r:>{{x}}}}|' + {text!r} * {number!r} + {real!r}\n"

    written = canonical_code(source(text, number, real))
    assert canonical_code(ast.unparse(ast.parse(source(text, number, real)))) == written
    assert canonical_code(source(text + "!", number, real)) != written
    assert canonical_code(source(text, float(number), real)) != written
