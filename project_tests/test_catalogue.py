"""The learner checks tell wrong solutions from correct ones, and say what went wrong.

Every entry of the wrong catalogue (course_fixtures/catalogue/wrong.py) must be rejected, with its
mistake named in the message where it can be recognised; every entry of the correct catalogue
(catalogue/correct.py) must pass. Both run on the tiny random world and, when its files are
there, on the trained toy world. The kill rate and false-reject rate of each check are printed at
the end of the run.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

import solutions
import tests as checks
from course_fixtures.catalogue import EXERCISES, Entry, all_entries, learner, outcome
from part_utils.random_world import TINY_SHAPE, build_random_world
from part_utils.toy_world import DATA_DIR, WORLD_FILE
from part_utils.world_types import World
from part_utils.worlds import load_world

ENTRIES = all_entries()
WORLDS = ("tiny", pytest.param("toy", marks=pytest.mark.toy_world))
slow = pytest.mark.slow
# The catalogue's core: each exercise's first wrong entry and first correct one other than the reference, on the
# tiny world. `make test-fast` runs it, so the fast tier alone shows every check rejecting wrong code and accepting
# another correct formulation; the slow tier (`make test`) runs every entry on every world.
CORE = {
    next(e for e in ENTRIES if e.exercise == exercise and e.correct == correct and e.name != "reference" and not e.needs_positional_embeddings).id
    for exercise in EXERCISES
    for correct in (False, True)
}


def _world_name(world: str | object) -> str:
    return world if isinstance(world, str) else world.values[0]


def _world_marks(world: str | object) -> list:
    return [] if isinstance(world, str) else list(world.marks)
# Share of rejected wrong solutions whose message carries a hint (the likely mistake), not only the difference.
MIN_HINT_RATE = 0.95


def _normalised(text: str) -> str:
    return " ".join(text.lower().split())


@pytest.fixture(scope="session")
def toy_world() -> World:
    if not (DATA_DIR / WORLD_FILE).exists():
        pytest.skip(f"the trained toy world is not there ({DATA_DIR.name}/{WORLD_FILE} is missing): run scripts/train_toy_world.py")
    return load_world("toy", device="cpu", verbose=False)


@pytest.fixture
def world(request: pytest.FixtureRequest) -> World:
    return request.getfixturevalue(f"{request.param}_world")


def _params(entries: list[Entry]) -> list:
    params = []
    for world in WORLDS:
        for entry in entries:
            marks = [getattr(pytest.mark, entry.marker), *_world_marks(world)]
            if _world_name(world) != "tiny" or entry.id not in CORE:
                marks.append(slow)
            params.append(pytest.param(_world_name(world), entry, id=f"{_world_name(world)}-{entry.id}", marks=marks))
    return params


@pytest.mark.parametrize(("world", "entry"), _params([e for e in ENTRIES if not e.correct]), indirect=["world"])
def test_wrong_solution_is_rejected(world: World, entry: Entry) -> None:
    if not entry.applies_to(world):
        pytest.skip("this world has rotary positions, so there are no positional embeddings to get wrong")
    result = outcome(entry, world)
    assert not result.accepted, f"{entry.description}: the check passed it:\n{result.message}"
    assert "Traceback" not in result.message
    if entry.hint is not None:
        assert _normalised(entry.hint) in _normalised(result.message), (
            f"{entry.description}: the message should name the mistake ({entry.hint!r}):\n{result.message}"
        )


@pytest.mark.parametrize(("world", "entry"), _params([e for e in ENTRIES if e.correct]), indirect=["world"])
def test_correct_solution_is_accepted(world: World, entry: Entry) -> None:
    if not entry.applies_to(world):
        pytest.skip("this world has rotary positions: model.pos_embed does not exist")
    result = outcome(entry, world)
    assert result.accepted, f"{entry.description}: the check rejected it:\n{result.message}"


def test_catalogues_are_big_enough() -> None:
    wrong = [e for e in ENTRIES if not e.correct]
    correct = [e for e in ENTRIES if e.correct]
    assert len(wrong) >= 25 and len(correct) >= 10
    assert {e.exercise for e in wrong} == {e.exercise for e in correct} == set(EXERCISES)
    recognised = [e for e in wrong if e.hint is not None]
    assert len(recognised) >= 0.9 * len(wrong), "most mistakes should be named in the message"


@pytest.mark.parametrize("exercise", list(EXERCISES), ids=list(EXERCISES))
def test_stub_gets_the_learner_message(exercise: str, tiny_world: World) -> None:
    """A function still raising NotImplementedError is told to fill in its body, without a traceback."""

    def stub(*args: object) -> None:
        raise NotImplementedError()

    class StubSparseTensor:
        @classmethod
        def from_dense(cls, dense: object) -> None:
            raise NotImplementedError()

        @classmethod
        def from_sparse(cls, sparse: object) -> None:
            raise NotImplementedError()

    from course_fixtures.catalogue import run_check

    with pytest.raises(checks.CheckFailed) as failure:
        run_check(exercise, StubSparseTensor if EXERCISES[exercise].sae_map is None else stub, tiny_world)
    assert re.search(r"still raises NotImplementedError: fill in its body", str(failure.value))


@slow
def test_kill_and_false_reject_rates(request: pytest.FixtureRequest, tiny_world: World, figures) -> None:
    """Run both catalogues on every world there is; print the table; 100% killed, 0% falsely rejected."""
    worlds = {"tiny": tiny_world}
    if (DATA_DIR / WORLD_FILE).exists():
        worlds["toy"] = request.getfixturevalue("toy_world")
    header = (
        f"{'world':6} {'check':22} {'killed':>9} {'named':>9} {'hinted':>9} {'kill rate':>10} {'accepted':>9} "
        f"{'false-reject':>13} {'max rel. err':>13}"
    )
    lines = [header, "-" * len(header)]
    failures = []
    hinted_total = killed_total = 0
    for name, world in worlds.items():
        for exercise in EXERCISES:
            wrong = [e for e in ENTRIES if e.exercise == exercise and not e.correct and e.applies_to(world)]
            right = [e for e in ENTRIES if e.exercise == exercise and e.correct and e.applies_to(world)]
            wrong_out = [outcome(e, world) for e in wrong]
            right_out = [outcome(e, world) for e in right]
            killed = sum(not o.accepted for o in wrong_out)
            named = sum(
                not o.accepted and e.hint is not None and _normalised(e.hint) in _normalised(o.message)
                for e, o in zip(wrong, wrong_out)
            )
            recognisable = sum(e.hint is not None for e in wrong)
            # A rejection with a hint names the likely mistake, not only the difference.
            hinted = sum(not o.accepted and o.hint_given for o in wrong_out)
            hinted_total, killed_total = hinted_total + hinted, killed_total + killed
            false_rejects = sum(not o.accepted for o in right_out)
            errors = [o.relative_error for o in right_out if o.relative_error is not None]
            lines.append(
                f"{name:6} {exercise:22} {killed:>4}/{len(wrong):<4} {named:>4}/{recognisable:<4} {hinted:>4}/{killed:<4} "
                f"{killed / len(wrong):>10.0%} {len(right) - false_rejects:>4}/{len(right):<4} "
                f"{false_rejects / len(right):>13.0%} {max(errors) if errors else 0.0:>13.1e}"
            )
            failures += [f"{name}: {e.id} passed" for e, o in zip(wrong, wrong_out) if o.accepted]
            failures += [f"{name}: {e.id} rejected" for e, o in zip(right, right_out) if not o.accepted]
    hint_rate = hinted_total / killed_total
    lines.append(f"hint rate: {hinted_total} of {killed_total} rejected wrong solutions ({hint_rate:.1%}) get a hint naming the likely mistake (goal: {MIN_HINT_RATE:.0%})")
    for line in lines:
        figures.add("learner checks: wrong catalogue killed, correct catalogue falsely rejected", line)
    print("\n".join(lines))
    assert not failures, failures
    assert hint_rate >= MIN_HINT_RATE, [e.id for e in ENTRIES if not e.correct and not outcome(e, worlds["tiny"]).hint_given]


def test_out_of_memory_hint_blames_the_outputs() -> None:
    """jacrev's memory grows with the number of outputs: the hint says so, and points at the memory helpers."""
    from tests._report import _hint_for_exception

    hint = _hint_for_exception(RuntimeError("CUDA out of memory. Tried to allocate 118.00 GiB"))
    assert "OUTPUTS" in hint and ".sparse[0]" in hint and "memory_report()" in hint


# A world and prompt where the last layer's last place is a tie: the k-th latent there has a twin (the same encoder
# column, bias and decoder row copied into a latent inactive on the prompt), so the two have the same activation and
# contribution. The reference's topk and sorted() may keep either; either is right.
TIED = {"seed": 1165240712, "prompt": "Big Ben stands in London, by the river.", "layers": (0, 1, 3), "k": 3}


@pytest.fixture(scope="module")
def tied_world() -> World:
    from solutions.latent_circuit import attribution, rank

    world = build_random_world(TINY_SHAPE, seed=TIED["seed"], device="cpu")
    tokens = world.model.to_tokens(TIED["prompt"])
    target = int(world.model(tokens)[0, -1].argmax())
    layers, k = TIED["layers"], TIED["k"]
    attr = attribution(tokens, world.saes, world.model, layers, target)
    _, _, latent = attr.acts[-1].sparse[1][rank(attr, k).kept[-1][-1]].tolist()
    sae = world.saes[layers[-1]]
    inactive = set(range(sae.cfg.d_sae)) - set(attr.acts[-1].sparse[1][:, 2].tolist())
    twin = max(inactive)
    with torch.no_grad():
        sae.W_enc[:, twin], sae.b_enc[twin], sae.W_dec[twin] = sae.W_enc[:, latent], sae.b_enc[latent], sae.W_dec[latent]
    return world


def _circuits(world: World, fn) -> tuple:
    args = _circuit_args(world)
    return solutions.latent_circuit(*args), fn(*args)


def _the_other_twin(world: World):
    """The hand-sorted learner that keeps the other twin than the reference's topk."""
    reference = {n.key for n in solutions.latent_circuit(*_circuit_args(world)).latents()}
    for tie_break in ("first", "last"):
        fn = learner.latent_circuit(tie_break=tie_break)
        if {n.key for n in fn(*_circuit_args(world)).latents()} != reference:
            return fn
    raise AssertionError("the tie this test is about is gone")


def _circuit_args(world: World) -> tuple:
    tokens = world.model.to_tokens(TIED["prompt"])
    target = int(world.model(tokens)[0, -1].argmax())
    return (tokens, world.saes, world.model, TIED["layers"], target, TIED["k"])


@slow
@pytest.mark.latent_circuit
def test_any_choice_among_tied_latents_is_accepted(tied_world: World, capsys: pytest.CaptureFixture) -> None:
    sorted_by_hand = _the_other_twin(tied_world)
    reference, mine = _circuits(tied_world, sorted_by_hand)
    assert {n.key for n in mine.latents()} != {n.key for n in reference.latents()}, "the tie this test is about is gone"
    shared = {n.key for n in mine.nodes} & {n.key for n in reference.nodes}
    compared_edges = sum({e.source, e.target} <= shared for e in reference.edges)
    assert compared_edges < len(reference.edges)
    for part in checks.latent_circuit.PARTS:
        checks.test_latent_circuit(sorted_by_hand, tied_world.model, tied_world.saes, prompt=TIED["prompt"], layers=TIED["layers"], k=TIED["k"], part=part)
        out = capsys.readouterr().out
        # The summary counts what was compared: the edges among the nodes both keep, and none where only nodes are.
        assert "tied at a cut" in out and (f", {compared_edges} edges match" in out) == (part != "nodes")


@slow
@pytest.mark.latent_circuit
def test_a_latent_that_is_not_tied_cannot_be_swapped(tied_world: World) -> None:
    """Ties excuse only the tied latents: trading a kept latent of nonzero contribution for a tied one is wrong."""
    reference, mine = _circuits(tied_world, _the_other_twin(tied_world))
    contributions = {n.key: n.contribution for n in reference.latents(TIED["layers"][-1])}
    nonzero = max(contributions, key=lambda key: abs(contributions[key]))
    tied = next(n for n in mine.latents(TIED["layers"][-1]) if n.key not in contributions)

    def swapped(*args):
        circuit = solutions.latent_circuit(*args)
        return dataclasses.replace(circuit, nodes=tuple(tied if n.key == nonzero else n for n in circuit.nodes))

    with pytest.raises(checks.CheckFailed, match="nodes"):
        checks.test_latent_circuit(swapped, tied_world.model, tied_world.saes, prompt=TIED["prompt"], layers=TIED["layers"], k=TIED["k"], part="nodes")
