"""Random operation sequences on both stores against a dict model (values, order, branches)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from store_helpers import both_stores, close_all, expected_range, keys, snapshot, values

from citychain.core.merkle import compute_root_from_items, verify_proof
from citychain.core.state import StateView

operations = st.lists(st.one_of(
    st.tuples(st.just("set"), keys, values),
    st.tuples(st.just("set"), keys, values),
    st.tuples(st.just("delete"), keys),
    st.tuples(st.just("get"), keys),
    st.tuples(st.just("iterate"), keys, st.one_of(st.none(), keys)),
    st.tuples(st.just("branch")),
    st.tuples(st.just("write")),
    st.tuples(st.just("discard")),
    st.tuples(st.just("root")),
    st.tuples(st.just("commit")),
), max_size=80)


class Model:
    """Committed state plus a stack of pending layers (working set, then nested branches)."""

    def __init__(self) -> None:
        self.committed: dict[bytes, bytes] = {}
        self.layers: list[dict[bytes, bytes | None]] = [{}]
        self.history: dict[int, dict[bytes, bytes]] = {}

    def view(self, depth: int | None = None) -> dict[bytes, bytes]:
        state = dict(self.committed)
        for layer in self.layers[:depth]:
            for key, value in layer.items():
                if value is None:
                    state.pop(key, None)
                else:
                    state[key] = value
        return state


def run(ops: list[tuple[Any, ...]]) -> None:
    stores = both_stores()
    model = Model()
    stacks: list[list[StateView]] = [[store.begin()] for store in stores]
    height = 0
    try:
        for op in [*ops, ("commit",)]:
            kind = op[0]
            if kind == "set":
                model.layers[-1][op[1]] = op[2]
                for stack in stacks:
                    stack[-1].set(op[1], op[2])
            elif kind == "delete":
                model.layers[-1][op[1]] = None
                for stack in stacks:
                    stack[-1].delete(op[1])
            elif kind == "get":
                expected = model.view().get(op[1])
                for stack in stacks:
                    assert stack[-1].get(op[1]) == expected
            elif kind == "iterate":
                expected_rows = expected_range(model.view(), op[1], op[2])
                for stack in stacks:
                    assert list(stack[-1].iterate(op[1], op[2])) == expected_rows
            elif kind == "branch":
                model.layers.append({})
                for stack in stacks:
                    stack.append(stack[-1].branch())
            elif kind in ("write", "discard"):
                if len(model.layers) == 1:
                    continue
                layer = model.layers.pop()
                if kind == "write":
                    model.layers[-1].update(layer)
                for stack in stacks:
                    branch = stack.pop()
                    if kind == "write":
                        branch.write()  # type: ignore[attr-defined]
            elif kind == "root":
                expected_root = compute_root_from_items(model.view(1))
                for stack in stacks:
                    assert stack[0].compute_root() == expected_root  # type: ignore[attr-defined]
            elif kind == "commit":
                # unwritten branches are dropped; the working set is committed
                model.layers = model.layers[:1]
                pending = sorted(model.layers[0].items())
                model.committed = model.view(1)
                model.layers = [{}]
                height += 1
                model.history[height] = dict(model.committed)
                roots = []
                for store, stack in zip(stores, stacks, strict=True):
                    working = stack[0]
                    assert working.changes() == pending  # type: ignore[attr-defined]
                    roots.append(store.commit(working, height))  # type: ignore[arg-type]
                    stack[:] = [store.begin()]
                assert roots[0] == roots[1] == compute_root_from_items(model.committed)
        for store in stores:
            assert store.latest_height == height
            for past, state in model.history.items():
                assert snapshot(store, past) == state
                assert store.root_at(past) == compute_root_from_items(state)
            for key in sorted(set(model.committed) | {b"", b"a", b"missing"}):
                value, proof = store.prove(key)
                assert value == model.committed.get(key)
                assert verify_proof(store.latest_root, key, value, proof)
            assert store.audit() == []
    finally:
        close_all(stores)


@settings(max_examples=120, deadline=None)
@given(operations)
def test_random_operations_match_the_model(ops: list[tuple[Any, ...]]) -> None:
    run(ops)


def test_branches_nest_and_discard() -> None:
    run([("set", b"a", b"1"), ("branch",), ("set", b"b", b"2"), ("branch",),
         ("delete", b"a"), ("iterate", b"", None), ("write",), ("get", b"a"), ("discard",),
         ("get", b"a"), ("get", b"b"), ("root",), ("commit",), ("delete", b"a"), ("branch",),
         ("set", b"a", b""), ("write",), ("iterate", b"", None)])
