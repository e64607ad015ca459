from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.images.digest import ContextFile, content_hash

ARGS = {"BASE_IMAGE": "debian:bookworm-slim"}


def _f(path: str, data: bytes = b"x", executable: bool = False) -> ContextFile:
    return ContextFile(path=path, executable=executable, data=data)


def test_hash_ignores_the_order_files_were_found_in() -> None:
    a, b = _f("a"), _f("b")
    assert content_hash([a, b], ARGS, {}) == content_hash([b, a], ARGS, {})


def test_hash_changes_with_content_mode_path_args_and_parents() -> None:
    base = content_hash([_f("a")], ARGS, {})
    variants = [
        content_hash([_f("a", b"y")], ARGS, {}),
        content_hash([_f("a", executable=True)], ARGS, {}),
        content_hash([_f("b")], ARGS, {}),
        content_hash([_f("a")], {"BASE_IMAGE": "ubuntu:24.04"}, {}),
        content_hash([_f("a")], ARGS, {"python": "0" * 64}),
    ]
    assert base not in variants
    assert len(set(variants)) == len(variants)


@given(st.text(min_size=1), st.binary(), st.text(min_size=1), st.binary())
def test_moving_bytes_between_path_and_data_changes_the_hash(
    p1: str, d1: bytes, p2: str, d2: bytes
) -> None:
    # Length-prefixed fields: ("ab", "c") and ("a", "bc") never collide.
    if (p1, d1) != (p2, d2):
        assert content_hash([_f(p1, d1)], {}, {}) != content_hash([_f(p2, d2)], {}, {})
