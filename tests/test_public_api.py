import memostore


def test_all_is_sorted_and_complete():
    assert memostore.__all__ == sorted(memostore.__all__)
    public = {name for name in vars(memostore) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(memostore, name)).__name__ == "module"}
    assert set(memostore.__all__) == public - modules


def test_every_public_name_resolves():
    for name in memostore.__all__:
        assert getattr(memostore, name) is not None
