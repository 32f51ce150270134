"""ITRp: unsupervised image-text relation classification by pseudo-labelling (seed ``itrp-unsupervised-itr-paper``).

The pipeline, one round per subset of m posts and epoch (the paper's Algorithm 1):

1. **features**: embed the subset's posts with the text and image towers and concatenate (text ⊕ image, the
   paper's), or, with ``relate.features``, turn them into pair features in a label-free aligned space
   (:mod:`.alignment`, :mod:`.interaction`, :mod:`.space`);
2. **clustering** (:mod:`.clustering`): cluster the embeddings into k pseudo-labels (faiss k-means on all points, or
   a GMM), re-seeding empty clusters, and align cluster ids with the previous round;
3. **sampling** (:mod:`.sampling`): pick a balanced set of rows (under-, over-, combination or plain sampling);
4. **head training**: reset the linear head and its optimiser, train head + one tower on the pseudo-labels;
5. **mapping / evaluation** (:mod:`.mapping`): name clusters after labels with the Hungarian algorithm fitted on dev,
   report weighted F1, accuracy, NMI and ARI on test, and list each cluster's most associated words.

Settings: :class:`~mmpost.relate.config.RelateConfig`, the ``relate:`` section of a run recipe (``cfg.relate``).

Importing this package registers the clusterers (``"kmeans"``, ``"gmm"``) and samplers (``"random"``, ``"under"``,
``"over"``, ``"combine"``).
"""
from __future__ import annotations

from mmpost.relate import clustering, mapping, sampling  # noqa: F401  (registers clusterers and samplers)
from mmpost.relate.clustering import ClusterResult, align_to_previous, get_clusterer
from mmpost.relate.config import RelateConfig
from mmpost.relate.mapping import cluster_words, evaluate, fit_mapping
from mmpost.relate.sampling import get_sampler

__all__ = ["ClusterResult", "RelateConfig", "align_to_previous", "cluster_words", "evaluate", "fit_mapping",
           "get_clusterer", "get_sampler"]
