"""ITRp building blocks: clusterers, balanced samplers, cluster→label mapping, cluster words (small synthetic data)."""
from __future__ import annotations

import warnings

import faiss
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, f1_score, normalized_mutual_info_score

from mmpost import registry
from mmpost.relate import clustering, mapping, sampling
from mmpost.relate.clustering import align_to_previous, fill_empty_clusters, get_clusterer, nearest_centroid
from mmpost.relate.mapping import ClusterMapping, cluster_words, evaluate, fit_mapping
from mmpost.relate.sampling import DegenerateClustersWarning, get_sampler


@pytest.fixture(autouse=True, scope="module")
def one_faiss_thread():
    """Keep faiss on one core (the test data is tiny) and restore its setting afterwards."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def blobs(n_per: int = 1000, k: int = 3, d: int = 32, spread: float = 6.0, seed: int = 0):
    """k well-separated Gaussian blobs: (x [k*n_per, d] float32, y [k*n_per])."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * spread
    y = np.repeat(np.arange(k), n_per)
    x = (centers[y] + rng.normal(size=(y.size, d))).astype(np.float32)
    return x, y


def duplicates() -> np.ndarray:
    """Two distinct points, 60 copies each: k=3 must leave a cluster empty under nearest-centroid assignment."""
    a = np.tile(np.array([[1.0, 0.0, 0.0, 0.0]], dtype=np.float32), (60, 1))
    b = np.tile(np.array([[0.0, 1.0, 0.0, 0.0]], dtype=np.float32), (60, 1))
    return np.concatenate([a, b])


# --------------------------------------------------------------------------------------------------- clustering


def test_registry_names_and_lookup():
    assert {"kmeans", "gmm"} <= set(registry.names("clusterer"))
    assert {"random", "under", "over", "combine"} <= set(registry.names("sampler"))
    assert isinstance(get_clusterer("kmeans", niter=5), clustering.KMeansClusterer)
    assert isinstance(get_sampler("under"), sampling.UnderSampler)
    with pytest.raises(registry.RegistryError):
        get_clusterer("dbscan")


def test_kmeans_recovers_blobs_using_all_points():
    x, y = blobs()  # 3,000 points > 256 * k = 768: faiss would sample without our cap
    res = get_clusterer("kmeans").fit_predict(x, 3, seed=0)
    assert adjusted_rand_score(y, res.labels) > 0.95
    assert res.sampled is None and res.info["trained_on"] == len(x)
    assert res.labels.shape == (len(x),) and res.labels.dtype == np.int64
    assert res.centroids.shape == (3, x.shape[1]) and res.centroids.dtype == np.float32
    assert res.reseeded == 0 and res.seconds > 0 and res.inertia > 0
    assert sorted(res.counts().tolist()) == [1000, 1000, 1000]


def test_kmeans_max_points_samples_and_says_so():
    x, y = blobs()
    clusterer = get_clusterer("kmeans", max_points=400)
    res = clusterer.fit_predict(x, 3, seed=1)
    assert res.sampled == 400 and res.info["trained_on"] == 400
    assert res.labels.shape == (len(x),)  # every point is still assigned
    assert adjusted_rand_score(y, res.labels) > 0.95
    # a cap at or above N is no sampling at all
    assert get_clusterer("kmeans", max_points=10_000).fit_predict(x, 3, seed=1).sampled is None


def test_kmeans_same_seed_same_result_and_predict_agrees():
    x, _ = blobs(n_per=300, seed=3)
    clusterer = get_clusterer("kmeans")
    a = clusterer.fit_predict(x, 3, seed=7)
    b = get_clusterer("kmeans").fit_predict(x, 3, seed=7)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(clusterer.predict(x), a.labels)


@pytest.mark.parametrize("how", ["l2", "standard", "none"])
def test_kmeans_normalize_options(how):
    x, y = blobs(n_per=200, seed=4)
    res = get_clusterer("kmeans", normalize=how).fit_predict(x, 3, seed=0)
    assert adjusted_rand_score(y, res.labels) > 0.95
    if how == "l2":  # centroids live in the normalised space: means of unit vectors have norm <= 1
        assert (np.linalg.norm(res.centroids, axis=1) <= 1.0 + 1e-5).all()
    with pytest.raises(ValueError):
        get_clusterer("kmeans", normalize="minmax")


def test_gmm_recovers_blobs_and_is_reproducible():
    x, y = blobs(n_per=300, d=16, seed=5)
    clusterer = get_clusterer("gmm")
    a = clusterer.fit_predict(x, 3, seed=0)
    b = get_clusterer("gmm").fit_predict(x, 3, seed=0)
    assert adjusted_rand_score(y, a.labels) > 0.95
    assert a.sampled is None and a.reseeded == 0 and a.centroids.shape == (3, 16)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(clusterer.predict(x), a.labels)


def test_fill_empty_clusters_reseeds_from_farthest_point():
    x, y = blobs(n_per=200, d=8, seed=6)
    z = clustering.normalize_features(x)
    # bad start: one centroid for blob 0, one for blobs 1+2 together, one far away from everything
    centroids = np.stack([z[y == 0].mean(0), z[y > 0].mean(0), np.full(8, 50.0)]).astype(np.float32)
    labels = nearest_centroid(z, centroids)
    assert np.bincount(labels, minlength=3)[2] == 0
    new_labels, new_centroids, reseeded = fill_empty_clusters(z, labels, centroids)
    assert reseeded == 1
    assert (np.bincount(new_labels, minlength=3) > 0).all()
    assert adjusted_rand_score(y, new_labels) > 0.95  # the re-seeded cluster took over one of the merged blobs
    # nothing empty: unchanged, count 0
    same, _, zero = fill_empty_clusters(z, new_labels, new_centroids)
    np.testing.assert_array_equal(same, new_labels)
    assert zero == 0


@pytest.mark.parametrize("name", ["kmeans", "gmm"])
def test_duplicates_leave_no_cluster_empty(name):
    x = duplicates()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = get_clusterer(name).fit_predict(x, 3, seed=0)
    assert (res.counts() > 0).all() and res.counts().sum() == len(x)
    assert res.reseeded >= 1
    assert any(issubclass(w.category, RuntimeWarning) and "by force" in str(w.message) for w in caught)


def test_clusterer_input_checks():
    x, _ = blobs(n_per=2, d=4)
    with pytest.raises(ValueError):
        get_clusterer("kmeans").fit_predict(x, 7, seed=0)  # 6 points, 7 clusters
    with pytest.raises(ValueError):
        get_clusterer("kmeans").fit_predict(x[0], 2, seed=0)  # not 2-d
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        get_clusterer("kmeans").fit_predict(bad, 2, seed=0)


def test_align_to_previous_undoes_a_permutation():
    rng = np.random.default_rng(8)
    previous = rng.integers(0, 4, size=500)
    relabel = np.array([2, 0, 3, 1])
    current = relabel[previous]
    noisy = current.copy()
    flip = rng.random(500) < 0.1
    noisy[flip] = rng.integers(0, 4, size=int(flip.sum()))
    aligned, perm = align_to_previous(previous, noisy, 4)
    np.testing.assert_array_equal(perm[relabel], np.arange(4))  # perm inverts the relabelling
    np.testing.assert_array_equal(aligned, perm[noisy])
    assert (aligned == previous).mean() > 0.85
    exact, _ = align_to_previous(previous, current, 4)
    np.testing.assert_array_equal(exact, previous)
    with pytest.raises(ValueError):
        align_to_previous(previous, current[:-1], 4)


# --------------------------------------------------------------------------------------------------- sampling


def imbalanced_labels(seed: int = 0) -> np.ndarray:
    y = np.repeat(np.array([0, 1, 2]), [300, 100, 50])
    return np.random.default_rng(seed).permutation(y)


@pytest.mark.parametrize("name,expected", [("under", 50), ("over", 300), ("combine", 150)])
def test_balanced_samplers_equalise_counts(name, expected):
    y = imbalanced_labels()
    sampler = get_sampler(name)
    rows = sampler.sample(np.arange(len(y)), y, seed=0)
    assert rows.dtype == np.int64 and rows.min() >= 0 and rows.max() < len(y)
    counts = np.bincount(y[rows], minlength=3)
    assert counts.tolist() == [expected] * 3
    info = sampler.last_info
    assert info is not None and not info.degenerate
    assert info.counts_before == {0: 300, 1: 100, 2: 50}
    assert info.counts_after == {0: expected, 1: expected, 2: expected}
    if name == "under":
        assert len(np.unique(rows)) == len(rows)  # no repeats
    if name == "over":
        assert set(rows.tolist()) == set(range(len(y)))  # every row kept, minorities repeated
    # shuffled, not grouped by cluster
    assert not (np.diff(y[rows]) >= 0).all()


def test_random_sampler_keeps_every_row_once():
    y = imbalanced_labels()
    rows = get_sampler("random").sample(len(y), y, seed=0)
    assert sorted(rows.tolist()) == list(range(len(y)))
    assert not (rows == np.arange(len(y))).all()


@pytest.mark.parametrize("name", ["random", "under", "over", "combine"])
def test_samplers_same_seed_same_rows(name):
    y = imbalanced_labels(seed=1)
    x = np.zeros((len(y), 3), dtype=np.float32)  # a feature matrix works too: only its length is read
    a = get_sampler(name).sample(x, y, seed=5)
    b = get_sampler(name).sample(x, y, seed=5)
    c = get_sampler(name).sample(x, y, seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", ["random", "under", "over", "combine"])
def test_single_cluster_is_degenerate(name):
    sampler = get_sampler(name)
    with pytest.warns(DegenerateClustersWarning):
        rows = sampler.sample(40, np.zeros(40, dtype=np.int64), seed=0)
    assert sorted(rows.tolist()) == list(range(40))
    assert sampler.last_info is not None and sampler.last_info.degenerate


def test_sampler_length_mismatch_raises():
    with pytest.raises(ValueError):
        get_sampler("under").sample(10, np.zeros(9, dtype=np.int64), seed=0)


# --------------------------------------------------------------------------------------------------- mapping


def test_mapping_recovers_permutation_on_dev_and_applies_to_test():
    rng = np.random.default_rng(9)
    relabel = np.array([2, 0, 1])  # cluster id = relabel[label]
    dev_y = rng.integers(0, 3, size=300)
    dev_c = relabel[dev_y]
    noise = rng.random(300) < 0.15
    dev_c[noise] = rng.integers(0, 3, size=int(noise.sum()))
    m = fit_mapping(dev_c, dev_y, k=3, n_labels=3)
    assert isinstance(m, ClusterMapping) and isinstance(m, dict)
    assert {c: m[c] for c in range(3)} == {int(relabel[lab]): lab for lab in range(3)}
    assert set(m.how.values()) == {"hungarian"}
    test_y = rng.integers(0, 3, size=200)
    scores = evaluate(relabel[test_y], test_y, m)
    assert scores["accuracy"] == 1.0 and scores["f1_weighted"] == 1.0 and scores["n"] == 200
    assert scores["nmi"] == pytest.approx(1.0) and scores["ari"] == pytest.approx(1.0)


def test_mapping_more_clusters_than_labels_uses_majority():
    # 4 clusters, 2 labels: clusters 0 and 3 are mostly label 1, clusters 1 and 2 mostly label 0
    clusters = np.array([0] * 50 + [1] * 40 + [2] * 10 + [3] * 20)
    labels = np.array([1] * 45 + [0] * 5 + [0] * 38 + [1] * 2 + [0] * 8 + [1] * 2 + [1] * 15 + [0] * 5)
    m = fit_mapping(clusters, labels, k=4, n_labels=2)
    assert dict(m) == {0: 1, 1: 0, 2: 0, 3: 1}
    assert m.how == {0: "hungarian", 1: "hungarian", 2: "majority", 3: "majority"}


def test_unseen_clusters_take_dev_majority():
    clusters = np.array([0, 0, 0, 1, 1])
    labels = np.array([1, 1, 1, 0, 1])  # dev majority label: 1
    m = fit_mapping(clusters, labels, k=3, n_labels=2)
    assert m[2] == 1 and m.how[2] == "unseen" and m.default == 1
    assert m[17] == 1  # an id never heard of
    scores = evaluate(np.array([2, 0, 1]), np.array([1, 1, 0]), m)
    assert scores["accuracy"] == 1.0


def test_evaluate_matches_sklearn():
    rng = np.random.default_rng(10)
    labels = rng.integers(0, 2, size=400)
    clusters = np.where(rng.random(400) < 0.75, labels, 1 - labels)
    m = fit_mapping(clusters[:200], labels[:200], k=2, n_labels=2)
    scores = evaluate(clusters[200:], labels[200:], m)
    pred = np.array([m[c] for c in clusters[200:]])
    assert scores["f1_weighted"] == pytest.approx(f1_score(labels[200:], pred, average="weighted"))
    assert scores["nmi"] == pytest.approx(normalized_mutual_info_score(labels[200:], clusters[200:]))
    assert scores["ari"] == pytest.approx(adjusted_rand_score(labels[200:], clusters[200:]))
    with pytest.raises(ValueError):
        fit_mapping(np.array([0, 5]), np.array([0, 1]), k=2, n_labels=2)


def test_cluster_words_on_toy_corpus():
    texts = [
        "my dog in the snow at the park https://t.co/abc",
        "Dog and puppy playing in the park @friend",
        "snow day with the dog #Snow",
        "the puppy loves snow",
        "JOIN us now! Join the giveaway https://example.com",
        "join now and win, giveaway today @brand",
        "RT @shop: win a giveaway, join now",
        "today only: join and win",
    ]
    clusters = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    words = cluster_words(texts, clusters, top=3)
    assert set(words) == {0, 1}
    top0 = [w for w, _ in words[0]]
    top1 = [w for w, _ in words[1]]
    assert set(top0) <= {"dog", "snow", "puppy", "park"} and top0[0] in {"dog", "snow"}
    assert set(top1) <= {"join", "giveaway", "win", "today"} and top1[0] == "join"
    scores = [s for _, s in words[0]]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    everything = {w for ws in cluster_words(texts, clusters, top=50).values() for w, _ in ws}
    assert not everything & {"the", "and", "rt", "https", "co", "friend", "brand", "shop", "com"}
    assert mapping.cluster_words(["@a https://x.y"], np.array([0])) == {0: []}


def test_kmeans_init_options():
    x, y = blobs(n_per=200, seed=4)  # faiss's random init merges two of these blobs for seed 0
    assert adjusted_rand_score(y, get_clusterer("kmeans", init="afk-mc2").fit_predict(x, 3, seed=0).labels) > 0.4
    res = get_clusterer("kmeans", init="random", nredo=5).fit_predict(x, 3, seed=0)  # restarts rescue random init
    assert adjusted_rand_score(y, res.labels) > 0.95
    with pytest.raises(ValueError):
        get_clusterer("kmeans", init="forgy")
