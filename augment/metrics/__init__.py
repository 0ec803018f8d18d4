"""Generator quality metrics that need no weights from the internet (`midg evaluate-generator`).

    midg evaluate-generator --real data/demo --synthetic data/syn_midg --synthetic data/syn_copypaste \
        --out runs/genmetrics/metrics.json [--seed 0] [--crop-size 32] [--checkpoint CKPT] [--device cpu]

- crops.py       defect crops around boxes, one size for every set
- classifier.py  the small CNN and its training loop (rich progress)
- cas.py         Classification Accuracy Score: train on synthetic, test on real
- c2st.py        classifier two-sample test, Wilson 95% interval
- frechet.py     in-domain Frechet distance and KID (features of the real-trained CNN)
- diversity.py   mean pairwise distance within a class
- fidelity.py    box, shape and inpainting fidelity (PSNR/SSIM vs cv2.inpaint), seam score
- evaluate.py    all of it for many synthetic sets -> metrics.json + metrics.png

How to read the numbers: docs/generator_metrics.md.
"""

from .evaluate import EvalConfig, evaluate_generator

__all__ = ["EvalConfig", "evaluate_generator"]
