"""Rank voting: rank scores, mean rank, log rank, majority, percentiles."""

import math

import numpy as np
import pytest

from scorers.voting import (
    MAJORITY_MAX_ARCHITECTURES,
    VOTE_METHODS,
    VoteResult,
    rank_scores,
    vote,
    vote_percentile,
)

BOTH_HIGH = {"a": True, "b": True}


def test_rank_scores_average_ties_and_direction():
    # Column "a" (higher is better): 5 > 3 = 3 > 1, so ranks (N = best) are 4, 2.5, 2.5, 1; / N = 4.
    # Column "b" (lower is better): 0.1 < 0.2 < 0.3 < 0.4, so ranks are 4, 3, 2, 1.
    scores = np.array([[5.0, 0.1], [3.0, 0.2], [3.0, 0.3], [1.0, 0.4]])
    ranks = rank_scores(scores, [True, False])
    np.testing.assert_allclose(ranks[:, 0], [4 / 4, 2.5 / 4, 2.5 / 4, 1 / 4])
    np.testing.assert_allclose(ranks[:, 1], [4 / 4, 3 / 4, 2 / 4, 1 / 4])


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_non_finite_scores_rank_last_in_either_direction(higher_is_better):
    # N = 5 with two finite values (1 and 2): they hold ranks 5 and 4 in the proxy's direction
    # (2 first when higher is better, 1 first when lower is better); NaN, +inf and -inf share the
    # last places 1, 2, 3 -> average rank 2 each, whatever the direction.
    scores = np.array([[1.0], [np.nan], [np.inf], [2.0], [-np.inf]])
    ranks = rank_scores(scores, [higher_is_better])[:, 0] * 5
    best, second = (3, 0) if higher_is_better else (0, 3)
    assert ranks[best] == 5 and ranks[second] == 4
    np.testing.assert_allclose(ranks[[1, 2, 4]], [2, 2, 2])


def test_rank_scores_rejects_mismatched_directions():
    with pytest.raises(ValueError, match="higher_is_better"):
        rank_scores(np.zeros((3, 2)), [True])


def test_mean_rank_is_borda_over_percentile_ranks():
    # a (higher better) = [3, 1, 2] -> ranks [3, 1, 2] / 3
    # b (lower better)  = [2, 3, 1] -> ranks [2, 1, 3] / 3
    # mean = [(3 + 2) / 6, (1 + 1) / 6, (2 + 3) / 6] = [5/6, 2/6, 5/6]
    scores = {"a": np.array([3.0, 1.0, 2.0]), "b": np.array([2.0, 3.0, 1.0])}
    votes = vote(scores, {"a": True, "b": False})
    np.testing.assert_allclose(votes, [5 / 6, 2 / 6, 5 / 6])


def test_log_rank_follows_az_nas_sum_of_log_rank_over_n():
    # Same ranks as above: a -> [3, 1, 2] / 3, b -> [2, 1, 3] / 3.
    # arch 0: log(3/3) + log(2/3) = log(2/3); arch 1: 2 log(1/3); arch 2: log(2/3) + log(3/3).
    scores = {"a": np.array([3.0, 1.0, 2.0]), "b": np.array([2.0, 3.0, 1.0])}
    votes = vote(scores, {"a": True, "b": False}, method="log_rank")
    np.testing.assert_allclose(votes, [math.log(2 / 3), 2 * math.log(1 / 3), math.log(2 / 3)])


def test_log_rank_rewards_balance_where_mean_rank_is_indifferent():
    # N = 4, both higher is better (rank 4 = best):
    # a = [40, 30, 20, 10] -> ranks [4, 3, 2, 1];  b = [1, 3, 4, 2] -> ranks [1, 3, 4, 2].
    # mean_rank: arch 0 (4+1)/8 = 0.625, arch 1 (3+3)/8 = 0.75, arch 2 (2+4)/8 = 0.75, arch 3 0.375.
    # log_rank:  arch 1 log(3/4)+log(3/4) = -0.575 beats arch 2 log(2/4)+log(4/4) = -0.693,
    # although both tie under mean_rank: being ranked high by *every* proxy wins.
    scores = {"a": np.array([40.0, 30.0, 20.0, 10.0]), "b": np.array([1.0, 3.0, 4.0, 2.0])}
    mean_votes = vote(scores, BOTH_HIGH, "mean_rank")
    log_votes = vote(scores, BOTH_HIGH, "log_rank")
    np.testing.assert_allclose(mean_votes, [0.625, 0.75, 0.75, 0.375])
    np.testing.assert_allclose(log_votes[1:3], [2 * math.log(0.75), math.log(0.5)])
    assert log_votes[1] > log_votes[2]


def test_majority_counts_pairwise_wins_with_draws_as_half():
    # a (higher better) = [3, 1, 2, nan]  -> order 0 > 2 > 1 > 3 (NaN last)
    # b (lower better)  = [1, 3, 2, 2]    -> order 0 > {2, 3 tied} > 1
    # pairs: 0 beats everyone on both proxies            -> 3 wins          -> 3/3
    #        1 vs 2: both prefer 2; 1 vs 3: a prefers 1, b prefers 3 -> draw -> 0.5/3
    #        2 vs 3: a prefers 2, b abstains (tie) -> 2 wins  -> 2: beats 1 and 3 -> 2/3
    #        3: one draw with 1 -> 0.5/3
    scores = {"a": np.array([3.0, 1.0, 2.0, np.nan]), "b": np.array([1.0, 3.0, 2.0, 2.0])}
    votes = vote(scores, {"a": True, "b": False}, method="majority")
    np.testing.assert_allclose(votes, [1.0, 0.5 / 3, 2 / 3, 0.5 / 3])


def test_majority_three_proxies_need_two_votes():
    # Rock-paper-scissors: x beats y on p, q; y beats z on p, r; z beats x on q, r.
    # p = [3, 2, 1], q = [2, 1, 3], r = [1, 3, 2] (higher is better): every arch wins one of two.
    scores = np.array([[3.0, 2.0, 1.0], [2.0, 1.0, 3.0], [1.0, 3.0, 2.0]])
    votes = vote(scores, dict.fromkeys("pqr", True), "majority", names=["p", "q", "r"])
    np.testing.assert_allclose(votes, [0.5, 0.5, 0.5])


def test_majority_matches_brute_force_on_a_random_population():
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 6, size=(60, 3)).astype(float)
    scores[rng.random(scores.shape) < 0.05] = np.nan
    directions = [True, False, True]
    ranks = rank_scores(scores, directions)
    expected = np.zeros(60)
    for i in range(60):
        for j in range(60):
            if i != j:
                margin = np.sign(ranks[i] - ranks[j]).sum()
                expected[i] += 1.0 if margin > 0 else 0.5 if margin == 0 else 0.0
    votes = vote(scores, dict(zip("xyz", directions, strict=False)), "majority", names=list("xyz"))
    np.testing.assert_allclose(votes, expected / 59)


@pytest.mark.parametrize("method", VOTE_METHODS)
def test_methods_agree_on_an_obvious_population(method):
    # arch 2 is best on all three proxies, arch 0 worst on all, arch 1 and 3 in between with
    # arch 3 ahead of arch 1 on every proxy: the only consistent order is 2 > 3 > 1 > 0.
    scores = {
        "snip": np.array([0.1, 0.5, 0.9, 0.7]),
        "grasp": np.array([9.0, 5.0, 1.0, 3.0]),  # lower is better
        "synflow": np.array([10.0, 20.0, 40.0, 30.0]),
    }
    directions = {"snip": True, "grasp": False, "synflow": True}
    votes = vote(scores, directions, method)
    assert list(np.argsort(-votes)) == [2, 3, 1, 0]


@pytest.mark.parametrize("method", VOTE_METHODS)
def test_vote_is_invariant_to_monotone_rescaling_of_a_proxy(method):
    rng = np.random.default_rng(3)
    scores = {"a": rng.normal(size=40), "b": rng.normal(size=40)}
    rescaled = {"a": np.exp(scores["a"]) * 1e6, "b": scores["b"] - 100}
    np.testing.assert_allclose(vote(scores, BOTH_HIGH, method), vote(rescaled, BOTH_HIGH, method))


def test_array_input_matches_mapping_input():
    rng = np.random.default_rng(5)
    matrix = rng.normal(size=(25, 2))
    from_array = vote(matrix, {"a": True, "b": False}, "log_rank", names=["a", "b"])
    from_mapping = vote({"a": matrix[:, 0], "b": matrix[:, 1]}, {"a": True, "b": False}, "log_rank")
    np.testing.assert_array_equal(from_array, from_mapping)


def test_single_architecture_and_pair():
    one = {"a": np.array([2.0]), "b": np.array([7.0])}
    assert vote(one, BOTH_HIGH, "mean_rank").tolist() == [1.0]
    assert vote(one, BOTH_HIGH, "log_rank").tolist() == [0.0]
    assert np.isnan(vote(one, BOTH_HIGH, "majority")).all()
    # Two archs, both proxies prefer arch 1: ranks arch 0 = 1/2, arch 1 = 2/2 on each proxy.
    two = {"a": np.array([1.0, 2.0]), "b": np.array([1.0, 2.0])}
    np.testing.assert_allclose(vote(two, BOTH_HIGH, "mean_rank"), [0.5, 1.0])
    np.testing.assert_allclose(vote(two, BOTH_HIGH, "log_rank"), [2 * math.log(0.5), 0.0])
    np.testing.assert_allclose(vote(two, BOTH_HIGH, "majority"), [0.0, 1.0])


def test_unknown_method_is_named_in_the_error():
    with pytest.raises(ValueError, match="method='borda'"):
        vote({"a": np.ones(3)}, {"a": True}, method="borda")


def test_missing_direction_and_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="synflow"):
        vote({"synflow": np.ones(3)}, {"snip": True})
    with pytest.raises(ValueError, match="same length"):
        vote({"a": np.ones(3), "b": np.ones(4)}, BOTH_HIGH)
    with pytest.raises(ValueError, match="names"):
        vote(np.ones((3, 2)), BOTH_HIGH)
    with pytest.raises(ValueError, match="at least one proxy"):
        vote({}, {})


def test_majority_refuses_populations_beyond_its_limit():
    # Only the size check runs: the refusal comes before any pairwise work.
    too_many = np.zeros((MAJORITY_MAX_ARCHITECTURES + 1, 1))
    with pytest.raises(ValueError, match="majority"):
        vote(too_many, {"a": True}, "majority", names=["a"])


def test_vote_percentile_population_of_one_is_undefined():
    result = vote_percentile({"a": np.array([]), "b": np.array([])}, {"a": 1.0, "b": 2.0}, BOTH_HIGH)
    assert result == VoteResult(value=None, population_size=1)


@pytest.mark.parametrize("method", VOTE_METHODS)
def test_vote_percentile_places_candidate_among_the_others(method):
    # Others: a = [1, 2, 3], b = [1, 2, 3]; candidate (2.5, 2.5) sits between the 2nd and 3rd,
    # so it beats 2 of the 3 others on every method: percentile 2/3, population 4.
    population = {"a": np.array([1.0, 2.0, 3.0]), "b": np.array([1.0, 2.0, 3.0])}
    result = vote_percentile(population, {"a": 2.5, "b": 2.5}, BOTH_HIGH, method)
    assert result.population_size == 4
    assert result.value == pytest.approx(2 / 3)


def test_vote_percentile_respects_direction_and_ties():
    # b is lower-is-better: candidate (a=3, b=0) is best on both -> beats both others -> 1.0.
    population = {"a": np.array([1.0, 2.0]), "b": np.array([5.0, 4.0])}
    assert vote_percentile(population, {"a": 3.0, "b": 0.0}, {"a": True, "b": False}).value == 1.0
    # An exact copy of the single other architecture ties it: half a win -> 0.5.
    twin = vote_percentile({"a": np.array([1.0]), "b": np.array([5.0])}, {"a": 1.0, "b": 5.0}, BOTH_HIGH)
    assert twin == VoteResult(value=0.5, population_size=2)


def test_vote_percentile_requires_every_population_proxy():
    with pytest.raises(ValueError, match="b"):
        vote_percentile({"a": np.ones(2), "b": np.ones(2)}, {"a": 1.0}, BOTH_HIGH)
