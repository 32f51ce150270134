"""Loading a run prints nothing: no transformers progress bar, no info lines (a notebook or a server stays clean)."""
from __future__ import annotations

import mmpost
from mmpost.apps.train import train
from mmpost.config import load_config
from tests.conftest import save_tiny_roberta, tiny_overrides


def test_loading_a_run_with_a_hugging_face_tower_prints_nothing(tmp_path, toy_csv, capfd):
    from transformers.utils import logging as hf_logging
    path = save_tiny_roberta(tmp_path / "rob", max_positions=40)
    over = tiny_overrides(tmp_path, toy_csv) + ["name=q", "train.epochs=1", "text_encoder.name=hf-text",
                                                f"text_encoder.path={path}", "text_encoder.trainable=false"]
    run = train(load_config(None, over)).run_dir
    hf_logging.enable_progress_bar()                 # as a fresh notebook has it
    capfd.readouterr()
    model = mmpost.load(run)
    printed = capfd.readouterr()
    assert printed.out == "" and printed.err == "", printed
    assert hf_logging.is_progress_bar_enabled()      # the user's own setting is put back
    assert model.predict([mmpost.Post(id="a", text="a post about thing 1")])[0]["label"] in ("red", "blue", "green")
