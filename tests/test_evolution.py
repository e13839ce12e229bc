"""Regularized evolution: random start, tournaments, aging, mutation on every space, resume."""

import numpy as np
import pytest
import tensorflow as tf

from nas_tf.controller import RegularizedEvolution, mutate_tokens
from nas_tf.spaces import EnasMacroSpace, EnasMicroSpace, NASCNNSpace, NASNetSpace, NB201Space, Skip

SPACES = [NB201Space(), EnasMacroSpace(num_layers=6), EnasMicroSpace(num_nodes=3), NASCNNSpace(num_layers=4), NASNetSpace(num_blocks=2)]


def _reward(tokens):
    """A deterministic reward that prefers some tokens over others."""
    tokens = np.atleast_2d(tokens)
    return np.cos(np.arange(1, tokens.shape[1] + 1) * tokens).sum(axis=1) / tokens.shape[1]


@pytest.mark.parametrize("space", SPACES, ids=lambda s: s.name)
def test_mutation_changes_exactly_one_decision_and_stays_valid(space):
    dl = space.decisions
    rng = np.random.default_rng(0)
    changed = set()
    for parent in dl.random_tokens(rng, 200):
        child = mutate_tokens(dl, parent, rng)
        before, after = dl.decode(parent), dl.decode(child)
        diff = [name for name in before if before[name] != after[name]]
        assert len(diff) == 1, diff
        d = next(d for d in dl if d.name == diff[0])
        if isinstance(d, Skip):  # a skip decision gains or loses one input
            assert len(set(before[d.name]) ^ set(after[d.name])) == 1
        space.from_tokens(child)  # a valid arch of the space
        changed.add(diff[0])
    # Every decision that can change was mutated at some point.
    assert len(changed) == sum(1 for d in dl if d.num_tokens and (not hasattr(d, "count") or d.count() > 1))


def test_mutation_reaches_every_other_value():
    dl = NB201Space().decisions
    rng = np.random.default_rng(1)
    parent = np.zeros(6, np.int32)
    seen = {k: set() for k in range(6)}
    for _ in range(600):
        child = mutate_tokens(dl, parent, rng)
        (k,) = np.flatnonzero(child != parent)
        seen[k].add(int(child[k]))
    assert all(values == {1, 2, 3, 4} for values in seen.values())


def test_first_population_is_random_then_tournaments_of_mutations():
    dl = NB201Space().decisions
    a, b = RegularizedEvolution(8, 3, seed=5), RegularizedEvolution(8, 3, seed=5)
    first_a, first_b = a.sample(dl, 4), b.sample(dl, 4)
    np.testing.assert_array_equal(first_a, first_b)
    a.update(dl, first_a, _reward(first_a))
    b.update(dl, first_b, -_reward(first_b))  # opposite rewards
    # Proposals 5..8 are still random: they ignore the rewards.
    second_a, second_b = a.sample(dl, 4), b.sample(dl, 4)
    np.testing.assert_array_equal(second_a, second_b)
    a.update(dl, second_a, _reward(second_a))
    b.update(dl, second_b, -_reward(second_b))
    # From proposal 9 on, children are one mutation away from a member, and the
    # rewards decide which member: the two runs part ways.
    population = np.concatenate([first_a, second_a])
    children_a, children_b = a.sample(dl, 20), b.sample(dl, 20)
    for child in children_a:
        assert ((population != child).sum(axis=1) == 1).any()
    assert not np.array_equal(children_a, children_b)


def test_tournament_over_the_whole_population_mutates_the_best():
    dl = NB201Space().decisions
    searcher = RegularizedEvolution(population_size=5, sample_size=5, seed=0)
    tokens = searcher.sample(dl, 5)
    rewards = _reward(tokens)
    searcher.update(dl, tokens, rewards)
    best = tokens[int(np.argmax(rewards))]
    for child in searcher.sample(dl, 30):
        assert (child != best).sum() == 1


def test_aging_removes_the_oldest_even_when_it_is_the_best():
    dl = NB201Space().decisions
    searcher = RegularizedEvolution(population_size=3, sample_size=3, seed=0)
    tokens = searcher.sample(dl, 3)
    searcher.update(dl, tokens, [0.9, 0.1, 0.2])  # the oldest is the best
    _, rewards, births = searcher.population()
    np.testing.assert_array_equal(births, [0, 1, 2])
    child = searcher.sample(dl, 1)
    assert (child[0] != tokens[0]).sum() == 1  # the best is the parent...
    metrics = searcher.update(dl, child, [0.3])
    pop_tokens, rewards, births = searcher.population()
    np.testing.assert_array_equal(births, [1, 2, 3])  # ...and leaves all the same
    np.testing.assert_allclose(rewards, [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(pop_tokens, np.concatenate([tokens[1:], child]))
    assert metrics == {"population": 3.0, "population_best": pytest.approx(0.3), "population_mean": pytest.approx(0.2), "oldest_birth": 1.0}


def test_checkpoint_round_trip_continues_exactly(tmp_path):
    dl = EnasMacroSpace(num_layers=4).decisions

    def run(searcher, steps):
        out = []
        for _ in range(steps):
            t = searcher.sample(dl, 3)
            searcher.update(dl, t, _reward(t))
            out.append(t)
        return np.concatenate(out)

    searcher = RegularizedEvolution(population_size=6, sample_size=2, seed=3)
    run(searcher, 4)
    path = tf.train.Checkpoint(**searcher.trackables()).write(str(tmp_path / "ckpt"))
    expected = run(searcher, 5)
    resumed = RegularizedEvolution(population_size=6, sample_size=2, seed=99)
    tf.train.Checkpoint(**resumed.trackables()).read(path).assert_consumed()
    np.testing.assert_array_equal(run(resumed, 5), expected)
    for x, y in zip(resumed.population(), searcher.population()):
        np.testing.assert_array_equal(x, y)
    # Restoring into the searcher that ran on (its copy in memory is stale) rewinds it too.
    tf.train.Checkpoint(**searcher.trackables()).read(path).assert_consumed()
    np.testing.assert_array_equal(run(searcher, 5), expected)


def test_new_decision_list_starts_a_new_population_and_errors():
    searcher = RegularizedEvolution(population_size=2, sample_size=1, seed=0)
    small, big = NASCNNSpace(num_layers=2).decisions, NASCNNSpace(num_layers=3).decisions
    t = searcher.sample(small, 2)
    searcher.update(small, t, [0.5, 0.6])
    searcher.sample(big, 1)
    tokens, _, _ = searcher.population()
    assert tokens.shape == (0, big.num_tokens)
    with pytest.raises(ValueError, match="do not match the decision list"):
        searcher.update(big, t, [0.1, 0.2])
    with pytest.raises(ValueError, match="sample_size must be <= population_size=3, got 4"):
        RegularizedEvolution(3, 4)
    with pytest.raises(ValueError, match="population_size must be a positive integer, got 0"):
        RegularizedEvolution(0, 1)
    assert RegularizedEvolution(10, 3, seed=2).config() == {"algorithm": "evolution", "population_size": 10, "sample_size": 3, "seed": 2}
