"""The first wave's hf_reg weights with recalibrated BatchNorm statistics (diagnosis of issue 15,
``benchmarks/results/hourglass_retrain/diagnosis.md``): writes ``scratch/hf_reg_shipped_recal_<recipe>.safetensors``."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mfif.models.hourglass.network import build_hourglass, save_hourglass_weights  # noqa: E402
from mfif.models.hourglass.trainer import RecipePairs, photo_sources, recalibrate_batchnorm  # noqa: E402
from mfif.models.training import default_data_root  # noqa: E402
torch.set_num_threads(1)
net = build_hourglass("reg", pretrained=True)
tr, _ = photo_sources(default_data_root())
for recipe in ("hourglass", "thinlens"):
    data = RecipePairs(tr, recipe, 128, seed=5)
    recalibrate_batchnorm(net, [data.batch(k, 4)["x"] for k in range(16)])
    save_hourglass_weights(net, f"scratch/hf_reg_shipped_recal_{recipe}.safetensors",
                           {"note": f"shipped hf_reg, BatchNorm recalibrated on 16 batches of 8 {recipe} crops"})
