"""mmpost: classifiers for social-media posts that carry an image and a text.

    import mmpost
    predictor = mmpost.load("runs/my-run")
    predictor.predict([mmpost.Post(id="1", text="what a day", images=["img/1.jpg"])])

Importing mmpost registers every encoder, model, objective, dataset adapter and metric; models and losses import without
the CLI (``mmpost.models``, ``mmpost.objectives``).
"""
from __future__ import annotations

from mmpost import registry
from mmpost.data import sources  # noqa: F401  (registers dataset adapters)
from mmpost.data.post import Post
from mmpost.encoders import concat, e5, efficientnet, hf_clip, hf_image, hf_text  # noqa: F401  (registers encoders)
from mmpost.evaluation import metrics  # noqa: F401  (registers metrics)
from mmpost.models import att, cma_clip, conc, lxmert, mmbt, vilt  # noqa: F401  (registers models)
from mmpost.objectives import ce, itc, itm  # noqa: F401  (registers objectives)
from mmpost.relate import clustering, sampling  # noqa: F401  (registers clusterers and samplers)

__version__ = "0.1.0"
__all__ = ["Post", "fit", "load", "registry", "__version__"]


def fit(df, **kwargs):
    """Train on a pandas DataFrame and return the loaded model (``mmpost.apps.fit.fit``)::

        model = mmpost.fit(df, text="tweet", image="photo", image_root="photos/", label="label", train__epochs=5)
        model.predict(new_df)      # a DataFrame: id, label, p_<label> ..., image_used
        model.evaluate(test_df)    # {split: {task: metrics}}
    """
    from mmpost.apps.fit import fit as _fit
    return _fit(df, **kwargs)


def load(run_dir):
    """Load a finished run for prediction: ``mmpost.load(RUN_DIR).predict(posts)``."""
    from mmpost.apps.predictor import load as _load
    return _load(run_dir)
